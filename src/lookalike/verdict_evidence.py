"""Evidence pictures of verdicts: the listing beside the catalogue photo or logo it matched.

Used by ``lookalike check --evidence DIR`` and from notebooks. The picture is drawn by
:func:`lookalike.evidence.render_evidence`; this module gathers what to draw: the listing
as decoded, the matched catalogue photo (from its source file) or logo (its clean rendering
as indexed), the logo's region and its matched keypoints.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from PIL import Image

from .data.decode import ImageDecodeError, ImageSource, decode_image
from .detect import Detector, Match, Verdict
from .evidence import EvidencePanel, render_evidence, save_evidence

_TRANSFORM_NOTES = {
    "mirrored": "the listing is a mirror image of it",
    "inverted": "the listing is its negative (colours inverted)",
}


def _details(match: Match) -> tuple[str, ...]:
    precision = (
        f" · precision ≈ {match.expected_precision:.2f}"
        if match.expected_precision is not None
        else ""
    )
    lines = [f"score {match.score:.3f}{precision}"]
    if match.inliers:
        lines.append(f"{match.inliers} keypoints agree with one perspective view")
        if match.transform in _TRANSFORM_NOTES:
            lines.append(_TRANSFORM_NOTES[match.transform])
    if match.agreement and match.kind == "logo":
        lines.append(f"outline alignment agrees {match.agreement:.0%}")
    elif match.agreement is not None:
        lines.append(f"aligned pictures agree {match.agreement:.0%}")
    if not match.inliers and not match.agreement:
        lines.append("found by its descriptor only (no geometric confirmation)")
    if match.region_source == "window":
        lines.append("outline approximate: the area it was found in")
    lines.append(f"catalogue item {match.item_id}")
    return tuple(lines)


def _reference(detector: Detector, match: Match) -> Image.Image | None:
    if match.kind == "logo" and match.region is not None and detector.logo_matcher:
        record = detector.logo_matcher.catalog.index.get(match.item_id)
        if record is not None:
            return detector.logo_matcher.catalog.rendering(record)
    if match.source:
        try:
            return decode_image(match.source)
        except ImageDecodeError:
            return None
    return None


def evidence_panels(
    detector: Detector, verdict: Verdict, *, photos: int = 1, logos: int = 3
) -> list[EvidencePanel]:
    """Panels for the best ``photos`` whole-photo matches (when the verdict is not clear on
    them) and the best ``logos`` logos scoring at least the logo review threshold (weaker
    ones would only clutter the picture); matches whose reference cannot be read are
    skipped."""
    chosen: list[tuple[Match, str]] = []
    if verdict.basis == "photo" and verdict.label != "clear":
        chosen += [(m, verdict.label) for m in verdict.matches[:photos]]
    thresholds = detector.logo_thresholds
    for match in verdict.logos[:logos]:
        level = thresholds.label(match.score)  # copy / review / clear on the logo scale
        if level != "clear":
            chosen.append((match, "logo" if level == "copy" else "review"))
    panels = []
    for match, label in chosen:
        reference = _reference(detector, match)
        if reference is None:
            continue
        kind = "logo" if match.kind == "logo" else "photo"
        panels.append(
            EvidencePanel(
                reference=reference,
                title=f"{kind} · {match.brand or match.item_id}",
                details=_details(match),
                region=match.region,
                point_pairs=match.point_pairs,
                label=label,
            )
        )
    return panels


def evidence_file_name(image: ImageSource) -> str:
    """A readable, collision-free PNG name for an input path (or bytes)."""
    key = str(image) if not isinstance(image, bytes | bytearray) else "bytes"
    digest = hashlib.sha256(key.encode()).hexdigest()[:8]
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(key).stem)[:60] or "image"
    return f"{stem}-{digest}.png"


def write_verdict_evidence(
    detector: Detector, image: ImageSource, verdict: Verdict, out_dir: Path
) -> Path:
    """Render ``verdict``'s evidence for ``image`` into ``out_dir``; returns the PNG path."""
    listing = decode_image(image)
    picture = render_evidence(listing, evidence_panels(detector, verdict))
    return save_evidence(picture, Path(out_dir) / evidence_file_name(image))
