"""Dense rewards from a vision-language model: CLIP image-text reward with a goal-baseline projection.

VLM-RM (Rocamonde et al. 2024, "Vision-Language Models are Zero-Shot Reward Models for RL", Eq. 2):

    R(s) = 1 - 1/2 * || (x - g) P ||^2,     P = alpha * d d^T / ||d||^2 + (1 - alpha) * I,   d = g - b

with ``x`` the unit-norm CLIP embedding of the rendered frame, ``g``/``b`` the unit-norm embeddings of the
goal and baseline prompts. ``alpha = 0`` is plain cosine similarity to the goal (``1 - |x-g|^2/2 = x.g``),
``alpha = 1`` keeps only the goal-minus-baseline direction.

The model is anything with ``encode_image``/``encode_text`` (the open_clip ``CLIP`` interface); frames are
preprocessed here in torch (resize, centre crop, normalise, as open_clip's eval transform), so neither
torchvision transforms nor PIL sit in the reward path. Rewards are always computed for a batch of frames
(an episode), never one frame per env step.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from pathlib import Path
from typing import Any, Callable, Optional, Protocol, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from pbrl.types import PbrlError

#: CLIP's (OpenAI) image normalisation, used by open_clip for its OpenAI/LAION ViT checkpoints.
CLIP_MEAN: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)

#: A tiny randomly initialised open_clip CLIP (tests and CPU benchmarks; no weights, no download).
TINY_CLIP_CONFIG: dict[str, Any] = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}

INSTALL_HINT = (
    "the VLM reward needs open_clip: pip install 'pbrl[vlm]' (open-clip-torch, which imports torchvision; "
    "torchvision must match the installed torch build, e.g. a CPU torch needs the CPU torchvision wheel)"
)


class ClipModel(Protocol):
    """The part of open_clip's ``CLIP`` that the reward uses."""

    def encode_image(self, images: torch.Tensor) -> torch.Tensor: ...

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor: ...


@dataclasses.dataclass
class ClipBackbone:
    """A CLIP model with what it needs around it.

    Attributes:
        model: has ``encode_image((B, 3, S, S) float) -> (B, D)`` and ``encode_text(tokens) -> (N, D)``.
        tokenizer: ``list[str] -> tokens`` accepted by ``model.encode_text``.
        image_size: side ``S`` of the square input.
        mean, std: per-channel normalisation of RGB values in [0, 1].
        device: where the model runs.
    """

    model: ClipModel
    tokenizer: Callable[[list[str]], torch.Tensor]
    image_size: int
    mean: Sequence[float] = CLIP_MEAN
    std: Sequence[float] = CLIP_STD
    device: str = "cpu"


def default_device() -> str:
    """The GPU when there is one, the CPU otherwise."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def preprocess_frames(frames: torch.Tensor, size: int, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """``(B, H, W, 3)`` uint8 frames -> ``(B, 3, size, size)`` float, as open_clip's eval transform.

    Resize the shorter side to ``size`` (bicubic, antialiased), centre-crop, scale to [0, 1], normalise.
    """
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise PbrlError(f"vlm frames: expected shape (B, H, W, 3) uint8, got {tuple(frames.shape)}")
    x = frames.permute(0, 3, 1, 2).float() / 255.0
    h, w = x.shape[-2:]
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    if (nh, nw) != (h, w):
        x = F.interpolate(x, size=(nh, nw), mode="bicubic", align_corners=False, antialias=True).clamp_(0.0, 1.0)
    top, left = (nh - size) // 2, (nw - size) // 2
    x = x[..., top:top + size, left:left + size]
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x - m) / s


def projection_reward(image_emb: torch.Tensor, goal_emb: torch.Tensor, baseline_emb: torch.Tensor,
                      alpha: float) -> torch.Tensor:
    """VLM-RM reward ``1 - 1/2 |(x - g) P|^2`` (Rocamonde et al. 2024, Eq. 2) for ``(B, D)`` embeddings.

    Embeddings are L2-normalised here; ``P`` projects onto the goal-baseline direction with weight
    ``alpha`` and keeps ``1 - alpha`` of the rest.
    """
    if not 0.0 <= alpha <= 1.0:
        raise PbrlError(f"reward.vlm.alpha: expected a number in [0, 1], got {alpha}")
    x = F.normalize(image_emb.float(), dim=-1)
    g = F.normalize(goal_emb.float().reshape(-1), dim=-1)
    b = F.normalize(baseline_emb.float().reshape(-1), dim=-1)
    d = g - b
    diff = x - g
    along = (diff @ d) / d.dot(d).clamp_min(1e-12)  # (B,) coefficient of diff's projection on d
    # diff P = alpha * along * d + (1 - alpha) * diff  (P is symmetric)
    proj = alpha * along[:, None] * d[None, :] + (1.0 - alpha) * diff
    return 1.0 - 0.5 * (proj * proj).sum(-1)


class ClipReward:
    """Per-frame VLM-RM reward for batches of rendered frames.

    Text embeddings of the two prompts are computed once; ``__call__`` embeds frames in chunks of
    ``batch_size`` under ``torch.no_grad`` and returns a float32 numpy reward per frame.
    """

    def __init__(self, backbone: ClipBackbone, *, goal: str, baseline: str, alpha: float = 0.5,
                 batch_size: int = 64) -> None:
        if not goal or not baseline:
            raise PbrlError("task.prompts: the VLM reward needs both prompts.goal and prompts.baseline")
        if batch_size < 1:
            raise PbrlError(f"reward.vlm.batch_size: expected >= 1, got {batch_size}")
        projection_reward(torch.zeros(1, 2), torch.ones(2), torch.ones(2), alpha)  # validates alpha early
        self.backbone, self.alpha, self.batch_size = backbone, float(alpha), int(batch_size)
        self.goal, self.baseline = goal, baseline
        with torch.no_grad():
            tokens = backbone.tokenizer([goal, baseline]).to(backbone.device)
            text = backbone.model.encode_text(tokens).float()
        self.goal_emb, self.baseline_emb = text[0], text[1]

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        """``(B, H, W, 3)`` uint8 frames -> ``(B,)`` float32 rewards."""
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise PbrlError(f"vlm frames: expected (B, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
        bb = self.backbone
        out = []
        with torch.no_grad():
            for start in range(0, len(frames), self.batch_size):
                chunk = torch.from_numpy(frames[start:start + self.batch_size]).to(bb.device)
                emb = bb.model.encode_image(preprocess_frames(chunk, bb.image_size, bb.mean, bb.std))
                out.append(projection_reward(emb, self.goal_emb, self.baseline_emb, self.alpha).cpu())
        if not out:
            return np.zeros(0, dtype=np.float32)
        return torch.cat(out).numpy().astype(np.float32)


def _import_open_clip():
    try:
        import open_clip
    except ImportError as exc:
        raise ImportError(f"{INSTALL_HINT} ({exc})") from exc
    except RuntimeError as exc:  # a torchvision built for another torch fails at import with a RuntimeError
        raise ImportError(f"{INSTALL_HINT}; importing it failed: {exc}") from exc
    return open_clip


def _missing_weights_error(open_clip: Any, model_name: str, pretrained: str, cache_dir: Optional[str],
                           exc: BaseException) -> PbrlError:
    """One line saying exactly what to download and where to put it."""
    cfg = open_clip.get_pretrained_cfg(model_name, pretrained) or {}
    hub = cfg.get("hf_hub", "").rstrip("/")
    source = f"hf-hub:{hub} (open_clip_pytorch_model.bin)" if hub else (cfg.get("url") or "its open_clip release")
    return PbrlError(
        f"reward.vlm: no weights for {model_name}/{pretrained} here ({type(exc).__name__}); download {source} "
        f"and set reward.vlm.checkpoint=/path/to/that/file, or fill open_clip's cache "
        f"({cache_dir or '~/.cache/huggingface'}) by running open_clip.create_model({model_name!r}, "
        f"pretrained={pretrained!r}) once on a machine with internet"
    )


@contextlib.contextmanager
def _hub_offline(offline: bool):
    """With ``offline``, huggingface_hub answers from its cache only: a missing file fails at once instead of
    after a minute of network retries, and nothing is downloaded during a training run."""
    if not offline:
        yield
        return
    import huggingface_hub.constants as hub

    env, const = os.environ.get("HF_HUB_OFFLINE"), hub.HF_HUB_OFFLINE
    os.environ["HF_HUB_OFFLINE"], hub.HF_HUB_OFFLINE = "1", True
    try:
        yield
    finally:
        hub.HF_HUB_OFFLINE = const
        if env is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = env


def load_open_clip(model_name: str = "ViT-B-32", *, pretrained: Optional[str] = "laion2b_s34b_b79k",
                   checkpoint: Optional[str] = None, cache_dir: Optional[str] = None,
                   device: Optional[str] = None, allow_download: bool = False) -> ClipBackbone:
    """An open_clip model in eval mode: ``checkpoint`` file > ``pretrained`` tag (cache) > random init.

    ``model_name="tiny"`` builds :data:`TINY_CLIP_CONFIG` with random weights (tests, CPU benchmarks).
    ``pretrained=None`` without a checkpoint is also random init (architecture only). A ``pretrained`` tag
    is looked up in open_clip's cache only, unless ``allow_download`` lets open_clip fetch it.
    """
    open_clip = _import_open_clip()
    device = device or default_device()
    if model_name == "tiny":
        from open_clip.model import CLIP

        model = CLIP(**TINY_CLIP_CONFIG)
        tokenizer = open_clip.tokenizer.SimpleTokenizer(context_length=TINY_CLIP_CONFIG["text_cfg"]["context_length"])
    else:
        if model_name not in open_clip.list_models():
            raise PbrlError(f"reward.vlm.model: {model_name!r} is not an open_clip model; e.g. ViT-B-32, ViT-L-14")
        weights = checkpoint or pretrained
        if checkpoint is not None and not Path(checkpoint).is_file():
            raise PbrlError(f"reward.vlm.checkpoint: {checkpoint} is not a file; "
                            "expected an open_clip .bin/.pt/.safetensors")
        try:
            with _hub_offline(not allow_download):
                model = open_clip.create_model(model_name, pretrained=weights, cache_dir=cache_dir)
        except (OSError, RuntimeError, ValueError) as exc:  # offline hub / missing cache entry
            if checkpoint is not None:
                raise PbrlError(f"reward.vlm.checkpoint: cannot load {checkpoint} into {model_name} ({exc})") from None
            raise _missing_weights_error(open_clip, model_name, str(pretrained), cache_dir, exc) from None
        tokenizer = open_clip.get_tokenizer(model_name)
    model = model.to(device).eval()
    size = model.visual.image_size
    size = int(size[0] if isinstance(size, (tuple, list)) else size)
    pp = getattr(model.visual, "preprocess_cfg", None) or {}
    return ClipBackbone(model=model, tokenizer=tokenizer, image_size=size, mean=tuple(pp.get("mean", CLIP_MEAN)),
                        std=tuple(pp.get("std", CLIP_STD)), device=str(device))


def clip_reward_from_config(vlm: Any, prompts: dict[str, str]) -> ClipReward:
    """Build the reward from a ``reward.vlm``/``feedback`` config node and the task's ``prompts``."""
    backbone = load_open_clip(str(vlm.get("model", "ViT-B-32")), pretrained=vlm.get("pretrained"),
                              checkpoint=vlm.get("checkpoint"), cache_dir=vlm.get("cache_dir"),
                              device=vlm.get("device"), allow_download=bool(vlm.get("allow_download", False)))
    return ClipReward(backbone, goal=prompts.get("goal", ""), baseline=prompts.get("baseline", ""),
                      alpha=float(vlm.get("alpha", 0.5)), batch_size=int(vlm.get("batch_size", 64)))
