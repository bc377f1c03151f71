"""`EmotionPromptPrior`: an open_clip model with learnable per-emotion prompts (CoOp-style).

The CERL emotion prior. Each emotion k gets the prompt

    [SOT] ctx_k,1 ... ctx_k,n [description of emotion k] [EOT] [pad ...]

where the `n` context vectors (8 by default) are learnable word embeddings and the
description is fixed text
([EMOTION_DESCRIPTIONS][decouple.priors.descriptions.EMOTION_DESCRIPTIONS]).
The prompt goes through CLIP's own text path, exactly as `model.encode_text` does for
tokens: token embeddings (with the context spliced in) + positional embedding, the text
transformer under its causal attention mask, `ln_final`, the pooling of the model
(`argmax` = the EOT position for CLIP) and `text_projection`. open_clip is imported only
when a prior is built.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from decouple.checkpoint import CheckpointError, check_state, read_weights, write_weights
from decouple.data.registry import canonical_emotion
from decouple.priors.descriptions import EMOTION_DESCRIPTIONS

__all__ = ["TINY_CLIP_CONFIG", "EmotionPromptPrior"]

TINY_CLIP_CONFIG = Path(__file__).resolve().parent / "configs" / "decouple-tiny-clip.json"
"""A tiny open_clip configuration shipped with the package (3.4M parameters, builds in
well under a second): embed_dim 64; vision ViT image_size 64, patch 16, 2 layers of width
64; text context 48, 2 layers of width 64 with 2 heads, CLIP's BPE vocabulary (49408).
Registered as `decouple-tiny-clip` by
[from_config][decouple.priors.EmotionPromptPrior.from_config]."""

_FORMAT = "decouple.EmotionPromptPrior.prompts/1"
_INTERP = {"bicubic": "bicubic", "bilinear": "bilinear", "nearest": "nearest"}


def _open_clip() -> Any:
    try:
        import open_clip
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            f"EmotionPromptPrior needs open_clip ({err}): pip install 'decouple[clip]'"
        ) from err
    return open_clip


class _TextPath(NamedTuple):
    token_embedding: nn.Embedding
    positional_embedding: Tensor
    transformer: nn.Module
    attn_mask: Tensor | None
    ln_final: nn.Module
    text_projection: Any
    pool_type: str
    eos_id: int | None
    context_length: int


def _text_path(model: nn.Module) -> _TextPath:
    """CLIP's text modules: on the model itself (CLIP) or on `model.text` (TextTransformer)."""
    holder = model
    text = getattr(model, "text", None)
    if not hasattr(model, "token_embedding") and text is not None:
        if not hasattr(text, "token_embedding"):
            raise ValueError(
                f"EmotionPromptPrior: the text tower {type(text).__name__} is not open_clip's "
                "TextTransformer (e.g. a Hugging Face text model); prompt learning needs CLIP's "
                "token_embedding / positional_embedding / transformer / ln_final path"
            )
        if getattr(text, "cls_emb", None) is not None or getattr(text, "use_pad_mask", False):
            raise ValueError(
                "EmotionPromptPrior: text towers with a class token or a padding mask (CoCa "
                "style) are not supported; use a CLIP-style text tower"
            )
        holder = text
    needed = ("token_embedding", "positional_embedding", "transformer", "ln_final")
    missing = [n for n in needed if not hasattr(holder, n)]
    if missing or not hasattr(model, "visual"):
        raise ValueError(
            f"EmotionPromptPrior: {type(model).__name__} is not an open_clip CLIP model "
            f"(missing {missing or ['visual']})"
        )
    pool = getattr(holder, "text_pool_type", getattr(holder, "pool_type", "argmax"))
    eos = getattr(holder, "text_eos_id", getattr(holder, "eos_id", None))
    return _TextPath(
        holder.token_embedding, holder.positional_embedding, holder.transformer,
        getattr(holder, "attn_mask", None), holder.ln_final,
        getattr(holder, "text_projection", None), pool, eos,
        int(holder.positional_embedding.shape[0]),
    )


class EmotionPromptPrior(nn.Module):
    """Per-emotion learnable prompts on a frozen open_clip model: emotion anchors and encoders.

    Data flow (K emotions, n context tokens, L = CLIP's context length, W = text width,
    D = CLIP's embedding size):

    1. token ids of `SOT X*n description EOT pad` (fixed): (K, L);
    2. `token_embedding`, positions 1..n replaced by `ctx`: (K, L, W);
    3. + `positional_embedding`, the text transformer under the causal `attn_mask`,
       `ln_final`: (K, L, W);
    4. CLIP's pooling (`argmax` of the ids = the EOT token) and `text_projection`: (K, D);
    5. L2 normalisation: (K, D), [prior][decouple.priors.EmotionPromptPrior.prior].

    Images: RGB (b, 3, h, w), uint8 in [0, 255] or float in [0, 1] -> resized to the
    model's image size as its preprocessing config says (`resize_mode` `shortest`: the
    shorter side to the size and a centre crop; `squash`: straight resize; `longest`: the
    longer side and padding with `fill_color`; `interpolation` bicubic / bilinear, with
    anti-aliasing; the result is clamped to [0, 1]) -> CLIP normalisation `(x - mean) / std`
    with the model's `mean` / `std` (applied here, once: float input outside [0, 1], e.g.
    already normalised frames, is rejected) -> `model.encode_image` -> (b, D).

    The CLIP towers are frozen by default (no gradient, kept in eval mode) but are *not*
    run under `no_grad`: gradients flow through them to the context and to input images
    (a generator's output, for emotion consistency). Only `ctx` (K, n, W) learns.

    Args:
        model: An open_clip `CLIP` (or `CustomTextCLIP` with open_clip's own text tower).
        emotion_names: Emotion names (canonical names or aliases, see
            `canonical_emotion`); row k of the
            prior is emotion k, in this order (e.g. `EmotionSet.names` of the shard index).
        tokenizer: open_clip's `SimpleTokenizer` (default: a new one with the model's
            context length).
        descriptions: Overrides / additions to `EMOTION_DESCRIPTIONS`, by canonical name.
        n_ctx: Learnable context tokens per emotion (8, as in CDRL).
        ctx_init: Initialise every emotion's context with the token embeddings of this
            phrase (exactly `n_ctx` tokens), as CoOp's `ctx_init`; default: CoOp's
            class-specific random init, N(0, 0.02^2).
        freeze_clip: Freeze both CLIP towers.

    Examples:
        >>> prior = EmotionPromptPrior.tiny(["neutral", "happy", "angry"])
        >>> prior.prior().shape, prior.emotion_names
        (torch.Size([3, 64]), ('neutral', 'happy', 'angry'))
        >>> prior.encode_image(torch.rand(2, 3, 80, 80)).shape
        torch.Size([2, 64])
        >>> prior.encode_text(["a face with a broad smile"]).shape
        torch.Size([1, 64])
    """

    def __init__(
        self,
        model: nn.Module,
        emotion_names: Iterable[str],
        *,
        tokenizer: Any = None,
        descriptions: Mapping[str, str] | None = None,
        n_ctx: int = 8,
        ctx_init: str | None = None,
        freeze_clip: bool = True,
    ) -> None:
        super().__init__()
        open_clip = _open_clip()
        path = _text_path(model)
        if isinstance(emotion_names, str):
            raise TypeError("emotion_names must be a sequence of names, not one str")
        names = tuple(canonical_emotion(n) for n in emotion_names)
        if not names:
            raise ValueError("emotion_names is empty")
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"emotion_names repeats {dupes} (after canonicalisation)")
        if isinstance(n_ctx, bool) or not isinstance(n_ctx, int) or n_ctx < 1:
            raise ValueError(f"n_ctx must be a positive int, got {n_ctx!r}")
        table = dict(EMOTION_DESCRIPTIONS)
        for key, text in (descriptions or {}).items():
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f"descriptions[{key!r}] must be a non-empty str")
            table[canonical_emotion(key)] = text
        if tokenizer is None:
            tokenizer = open_clip.tokenizer.SimpleTokenizer(context_length=path.context_length)
        for attr in ("encode", "sot_token_id", "eot_token_id"):
            if not hasattr(tokenizer, attr):
                raise TypeError(
                    f"tokenizer must be open_clip's SimpleTokenizer (or alike: encode, "
                    f"sot_token_id, eot_token_id); {type(tokenizer).__name__} has no {attr!r}"
                )
        self.clip = model
        self.tokenizer = tokenizer
        self.emotion_names: tuple[str, ...] = names
        self.descriptions: tuple[str, ...] = tuple(table[n] for n in names)
        self.n_ctx = n_ctx
        self.freeze_clip = bool(freeze_clip)
        self.context_length = path.context_length

        placeholder = tokenizer.encode("X")
        ids = torch.zeros(len(names), path.context_length, dtype=torch.long)
        for k, (name, text) in enumerate(zip(names, self.descriptions, strict=True)):
            desc = tokenizer.encode(text)
            need = 1 + n_ctx + len(desc) + 1
            if need > path.context_length:
                raise ValueError(
                    f"the description of {name!r} takes {len(desc)} tokens: with n_ctx={n_ctx} "
                    f"the prompt needs 1 + {n_ctx} + {len(desc)} + 1 = {need} positions but the "
                    f"model's context length is {path.context_length}; shorten it (descriptions="
                    "{...}) or use fewer context tokens"
                )
            row = [tokenizer.sot_token_id, *placeholder * n_ctx, *desc, tokenizer.eot_token_id]
            ids[k, : len(row)] = torch.tensor(row)
        self.register_buffer("token_ids", ids, persistent=False)

        emb = path.token_embedding.weight
        width = emb.shape[1]
        if ctx_init is None:
            ctx = torch.empty(len(names), n_ctx, width, dtype=emb.dtype, device=emb.device)
            nn.init.normal_(ctx, std=0.02)
        else:
            init_ids = tokenizer.encode(ctx_init)
            if len(init_ids) != n_ctx:
                raise ValueError(
                    f"ctx_init {ctx_init!r} is {len(init_ids)} tokens; it must be exactly "
                    f"n_ctx={n_ctx}"
                )
            with torch.no_grad():
                words = path.token_embedding(torch.tensor(init_ids, device=emb.device))
            ctx = words[None].repeat(len(names), 1, 1).clone()
        self.ctx = nn.Parameter(ctx)

        cfg = open_clip.get_model_preprocess_cfg(model) or {}
        defaults = open_clip.transform.PreprocessCfg()
        size = cfg.get("size", getattr(model.visual, "image_size", defaults.size))
        self.image_size: tuple[int, int] = (
            (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))
        )
        self.resize_mode: str = str(cfg.get("resize_mode", defaults.resize_mode))
        self.interpolation: str = _INTERP.get(str(cfg.get("interpolation", "bicubic")), "bicubic")
        self.fill_color: int = int(cfg.get("fill_color", 0))
        mean = torch.tensor(cfg.get("mean", defaults.mean), dtype=torch.float32)
        std = torch.tensor(cfg.get("std", defaults.std), dtype=torch.float32)
        self.register_buffer("image_mean", mean.reshape(1, 3, 1, 1), persistent=False)
        self.register_buffer("image_std", std.reshape(1, 3, 1, 1), persistent=False)
        with torch.no_grad():
            self.dim: int = int(self._encode_embedded(
                path.token_embedding(self.token_ids[:1]), self.token_ids[:1]).shape[-1])
        if self.freeze_clip:
            model.requires_grad_(False)
            model.eval()

    # ------------------------------------------------------------------ constructors

    @classmethod
    def from_pretrained(
        cls,
        architecture: str,
        weights: str | os.PathLike | None,
        emotion_names: Iterable[str],
        **kwargs: Any,
    ) -> EmotionPromptPrior:
        """A named open_clip architecture with weights from a local file (never a download).

        Args:
            architecture: An open_clip model name (`ViT-B-32` for CDRL).
            weights: Local file: a state dict of that open_clip model (`torch.save`, the
                `open_clip_pytorch_model.bin` of a hub repo, or `.safetensors`). A pretrained
                tag such as `openai` is refused (it would download).
            emotion_names: Emotions, in row order.
            **kwargs: Keyword arguments of `EmotionPromptPrior`.

        Returns:
            The prior.

        Raises:
            FileNotFoundError: No weights file (the message says how to make one).

        Examples:
            >>> EmotionPromptPrior.from_pretrained("ViT-B-32", None, ["happy"])
            Traceback (most recent call last):
            ...
            FileNotFoundError: EmotionPromptPrior: no weights file given for 'ViT-B-32'. ...
        """
        # the file is checked first: no import needed, the error is immediate
        detail = ("no weights file given" if weights is None
                  else f"no file at {weights}")
        if weights is None or not Path(weights).is_file():
            raise FileNotFoundError(
                f"EmotionPromptPrior: {detail} for {architecture!r}. The weights must be a "
                "local file (a state dict of the open_clip model); nothing is downloaded and "
                "pretrained tags such as 'openai' are refused. Make it once on a machine with "
                "internet: python -c \"import open_clip, torch; m = open_clip.create_model("
                f"'{architecture}', pretrained='openai'); torch.save(m.state_dict(), "
                f"'{architecture}-openai.pt')\", copy the file here and pass it: "
                f"EmotionPromptPrior.from_pretrained('{architecture}', '{architecture}-openai.pt', "
                "names)."
            )
        open_clip = _open_clip()
        if architecture not in open_clip.list_models():
            raise KeyError(
                f"unknown open_clip architecture {architecture!r}; register a JSON config with "
                "EmotionPromptPrior.from_config or pick one of open_clip.list_models()"
            )
        model = _create(open_clip, architecture, str(Path(weights).resolve()))
        tokenizer = open_clip.get_tokenizer(architecture)
        kwargs.setdefault("tokenizer", tokenizer)
        return cls(model, emotion_names, **kwargs)

    @classmethod
    def from_config(
        cls,
        config: str | os.PathLike,
        emotion_names: Iterable[str],
        weights: str | os.PathLike | None = None,
        **kwargs: Any,
    ) -> EmotionPromptPrior:
        """An open_clip model from a JSON config (registered with `open_clip.add_model_config`).

        The config registers under its file stem; without `weights` the model is randomly
        initialised (for tests, or before training it on SynthTalk captions).

        Args:
            config: Path of an open_clip model config JSON (`embed_dim`, `vision_cfg`,
                `text_cfg`).
            emotion_names: Emotions, in row order.
            weights: Optional local state dict of that model.
            **kwargs: Keyword arguments of `EmotionPromptPrior`.

        Returns:
            The prior.

        Examples:
            >>> prior = EmotionPromptPrior.from_config(TINY_CLIP_CONFIG, ["sad", "happy"])
            >>> prior.prior().shape
            torch.Size([2, 64])
        """
        open_clip = _open_clip()
        config = Path(config)
        if not config.is_file():
            raise FileNotFoundError(f"EmotionPromptPrior.from_config: no config file at {config}")
        if weights is not None and not Path(weights).is_file():
            raise FileNotFoundError(f"EmotionPromptPrior.from_config: no weights file at {weights}")
        name = config.stem
        try:
            cfg = json.loads(config.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise ValueError(f"{config}: not a readable JSON model config ({err})") from err
        missing = [k for k in ("embed_dim", "vision_cfg", "text_cfg")
                   if not isinstance(cfg, dict) or k not in cfg]
        if missing:
            raise ValueError(
                f"{config}: not an open_clip model config: missing fields {missing} (expected "
                "embed_dim, vision_cfg, text_cfg; see open_clip/model_configs/ViT-B-32.json)"
            )
        if open_clip.get_model_config(name) != cfg:  # register once (re-register if changed)
            open_clip.add_model_config(config)
        model = _create(open_clip, name, None if weights is None else str(Path(weights).resolve()))
        kwargs.setdefault("tokenizer", open_clip.get_tokenizer(name))
        return cls(model, emotion_names, **kwargs)

    @classmethod
    def tiny(cls, emotion_names: Iterable[str], **kwargs: Any) -> EmotionPromptPrior:
        """A randomly initialised tiny model ([TINY_CLIP_CONFIG][decouple.priors.TINY_CLIP_CONFIG]).

        Args:
            emotion_names: Emotions, in row order.
            **kwargs: Keyword arguments of `from_config` / `EmotionPromptPrior`.

        Returns:
            The prior.

        Examples:
            >>> EmotionPromptPrior.tiny(["happy"]).dim
            64
        """
        return cls.from_config(TINY_CLIP_CONFIG, emotion_names, **kwargs)

    # ------------------------------------------------------------------ text

    def _encode_embedded(self, x: Tensor, ids: Tensor) -> Tensor:
        """CLIP's text path from token embeddings (n, L, W) and their ids (n, L): (n, D)."""
        open_clip = _open_clip()
        path = _text_path(self.clip)
        cast = path.transformer.get_cast_dtype() if hasattr(path.transformer, "get_cast_dtype") \
            else x.dtype
        x = x.to(cast) + path.positional_embedding.to(cast)
        x = path.transformer(x, attn_mask=path.attn_mask)
        x = path.ln_final(x)
        x = open_clip.transformer.text_global_pool(x, ids, path.pool_type, eos_token_id=path.eos_id)
        proj = path.text_projection
        if proj is not None:
            x = proj(x) if isinstance(proj, nn.Module) else x @ proj
        return x

    def prompt_embeddings(self) -> Tensor:
        """The prompts as token embeddings, context spliced in at positions 1..n_ctx.

        Returns:
            Embeddings (K, L, W).

        Examples:
            >>> p = EmotionPromptPrior.tiny(["happy", "sad"], n_ctx=4)
            >>> p.prompt_embeddings().shape
            torch.Size([2, 48, 64])
        """
        emb = _text_path(self.clip).token_embedding(self.token_ids)
        ctx = self.ctx.to(emb.dtype)
        return torch.cat([emb[:, :1], ctx, emb[:, 1 + self.n_ctx :]], dim=1)

    def prior(self) -> Tensor:
        """The emotion anchors: the L2-normalised text features of the K prompts.

        Returns:
            Anchors (K, D), row k = emotion `emotion_names[k]`; differentiable w.r.t. `ctx`.

        Examples:
            >>> a = EmotionPromptPrior.tiny(["happy", "sad"]).prior()
            >>> torch.allclose(a.norm(dim=-1), torch.ones(2))
            True
        """
        x = self._encode_embedded(self.prompt_embeddings(), self.token_ids)
        return nn.functional.normalize(x, dim=-1)

    def forward(self) -> Tensor:
        """Same as [prior][decouple.priors.EmotionPromptPrior.prior].

        Returns:
            Anchors (K, D).

        Examples:
            >>> p = EmotionPromptPrior.tiny(["happy", "sad"])
            >>> torch.equal(p(), p.prior())
            True
        """
        return self.prior()

    def encode_text(self, prompts: Sequence[str], normalize: bool = True) -> Tensor:
        """Text features of free-text prompts (e.g. "a face with a broad smile").

        Tokenised with the prior's tokenizer and encoded through the same text path as the
        emotion prompts (no learnable context); equal to open_clip's `encode_text`.

        Args:
            prompts: n strings.
            normalize: L2-normalise the features.

        Returns:
            Features (n, D).

        Raises:
            ValueError: A prompt does not fit the context length.

        Examples:
            >>> EmotionPromptPrior.tiny(["happy"]).encode_text(["a smile", "a frown"]).shape
            torch.Size([2, 64])
        """
        if isinstance(prompts, str) or not all(isinstance(p, str) for p in prompts):
            raise TypeError("prompts must be a sequence of str")
        rows = []
        for i, text in enumerate(prompts):
            tokens = [self.tokenizer.sot_token_id, *self.tokenizer.encode(text),
                      self.tokenizer.eot_token_id]
            if len(tokens) > self.context_length:
                raise ValueError(
                    f"prompt {i} ({text[:40]!r}...) takes {len(tokens)} tokens with SOT/EOT, more "
                    f"than the context length {self.context_length}"
                )
            rows.append(tokens + [0] * (self.context_length - len(tokens)))
        ids = torch.tensor(rows, dtype=torch.long, device=self.token_ids.device).reshape(
            len(rows), self.context_length)
        x = self._encode_embedded(_text_path(self.clip).token_embedding(ids), ids)
        return nn.functional.normalize(x, dim=-1) if normalize else x

    # ------------------------------------------------------------------ images

    def preprocess(self, frames: Tensor) -> Tensor:
        """RGB frames -> CLIP's input: resized to the image size, then `(x - mean) / std`.

        Args:
            frames: RGB (b, 3, h, w), uint8 [0, 255] or float [0, 1].

        Returns:
            Normalised images (b, 3, H, W) in the dtype of the image tower.

        Examples:
            >>> p = EmotionPromptPrior.tiny(["happy"])
            >>> p.preprocess(torch.full((1, 3, 64, 64), 255, dtype=torch.uint8))[0, :, 0, 0]
            tensor([1.9303, 2.0749, 2.1459])
        """
        if not isinstance(frames, Tensor) or frames.ndim != 4 or frames.shape[1] != 3:
            raise ValueError(
                "frames must be RGB images (b, 3, h, w), got "
                + (str(tuple(frames.shape)) if isinstance(frames, Tensor)
                   else type(frames).__name__)
            )
        if frames.dtype == torch.uint8:
            x = frames.float() / 255.0
        elif frames.is_floating_point():
            lo, hi = float(frames.detach().min()), float(frames.detach().max())
            if lo < -1e-3 or hi > 1 + 1e-3:
                raise ValueError(
                    f"float frames must be RGB in [0, 1], got values in [{lo:.3g}, {hi:.3g}]: "
                    "are they already normalised? encode_image applies CLIP's normalisation "
                    "itself (once); pass raw RGB in [0, 1] or uint8"
                )
            x = frames.float()
        else:
            raise ValueError(f"frames must be uint8 or floating point, got {frames.dtype}")
        x = self._resize(x)
        x = (x - self.image_mean) / self.image_std
        dtype = next(self.clip.visual.parameters()).dtype
        return x.to(dtype)

    def _resize(self, x: Tensor) -> Tensor:
        th, tw = self.image_size
        h, w = x.shape[-2:]
        if (h, w) == (th, tw):
            return x
        mode = self.interpolation
        kw: dict[str, Any] = (
            {} if mode == "nearest" else {"antialias": True, "align_corners": False}
        )

        def resize(img: Tensor, size: tuple[int, int]) -> Tensor:
            return nn.functional.interpolate(img, size=size, mode=mode, **kw).clamp_(0.0, 1.0)

        if self.resize_mode == "squash" or th != tw:
            return resize(x, (th, tw))
        if self.resize_mode == "longest":
            scale = th / max(h, w)
            nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
            img = resize(x, (nh, nw))
            top, left = (th - nh) // 2, (tw - nw) // 2
            return nn.functional.pad(img, (left, tw - nw - left, top, th - nh - top),
                                     value=self.fill_color / 255.0)
        scale = th / min(h, w)  # "shortest": shorter side to the size, centre crop
        nh, nw = max(th, round(h * scale)), max(tw, round(w * scale))
        img = resize(x, (nh, nw))
        top, left = (nh - th) // 2, (nw - tw) // 2
        return img[..., top : top + th, left : left + tw]

    def encode_image(self, frames: Tensor, normalize: bool = True) -> Tensor:
        """Image features of RGB frames through CLIP's image tower (normalisation applied once).

        Args:
            frames: RGB (b, 3, h, w), uint8 [0, 255] or float [0, 1]; never pre-normalised.
            normalize: L2-normalise the features.

        Returns:
            Features (b, D).

        Examples:
            >>> p = EmotionPromptPrior.tiny(["happy"])
            >>> p.encode_image(torch.randint(0, 256, (3, 3, 64, 64), dtype=torch.uint8)).shape
            torch.Size([3, 64])
        """
        x = self.clip.encode_image(self.preprocess(frames))
        return nn.functional.normalize(x, dim=-1) if normalize else x

    # ------------------------------------------------------------------ state

    def train(self, mode: bool = True) -> EmotionPromptPrior:
        """Set training mode; frozen CLIP towers stay in eval mode.

        Args:
            mode: Training mode.

        Returns:
            self.

        Examples:
            >>> p = EmotionPromptPrior.tiny(["happy"]).train()
            >>> p.training, p.clip.training
            (True, False)
        """
        super().train(mode)
        if self.freeze_clip:
            self.clip.eval()
        return self

    def prompt_state_dict(self) -> dict[str, Tensor]:
        """The learnable prompt parts: `{"ctx": (K, n_ctx, W)}`.

        Returns:
            Detached tensors.

        Examples:
            >>> state = EmotionPromptPrior.tiny(["sad"]).prompt_state_dict()
            >>> {k: tuple(v.shape) for k, v in state.items()}
            {'ctx': (1, 8, 64)}
        """
        return {"ctx": self.ctx.detach().clone()}

    def save_prompts(self, path: str | os.PathLike) -> Path:
        """Save the learnable context (and the emotion names and descriptions it belongs to).

        `.safetensors` by suffix, else a `torch.save`d dict readable with `weights_only=True`;
        written to a temporary name and renamed.

        Args:
            path: Target file.

        Returns:
            The path written.

        Examples:
            >>> import tempfile, pathlib
            >>> p = EmotionPromptPrior.tiny(["happy", "sad"])
            >>> f = p.save_prompts(pathlib.Path(tempfile.mkdtemp()) / "prompts.pt")
            >>> q = EmotionPromptPrior.tiny(["happy", "sad"]).load_prompts(f)
            >>> torch.equal(q.ctx, p.ctx)
            True
        """
        meta = {"format": _FORMAT, "emotion_names": list(self.emotion_names),
                "descriptions": list(self.descriptions), "n_ctx": self.n_ctx}
        return write_weights(path, self.prompt_state_dict(), meta)

    def load_prompts(self, path: str | os.PathLike) -> EmotionPromptPrior:
        """Load a context saved by [save_prompts][decouple.priors.EmotionPromptPrior.save_prompts].

        Args:
            path: The file.

        Returns:
            self.

        Raises:
            decouple.checkpoint.CheckpointError: Missing / unexpected keys or shapes (named),
                or other emotion names or descriptions than this prior's.

        Examples:
            >>> import tempfile, pathlib
            >>> f = pathlib.Path(tempfile.mkdtemp()) / "bad.pt"
            >>> torch.save({"context": torch.zeros(1, 8, 64)}, f)
            >>> EmotionPromptPrior.tiny(["sad"]).load_prompts(f)
            Traceback (most recent call last):
            ...
            decouple.checkpoint.CheckpointError: ...bad.pt does not fit ... missing keys (1): ctx...
        """
        state, meta = read_weights(path, what="an EmotionPromptPrior prompt file")
        check_state(self.prompt_state_dict(), state, source=str(path),
                    target="the EmotionPromptPrior prompts")
        for key, mine in (("emotion_names", list(self.emotion_names)),
                          ("descriptions", list(self.descriptions))):
            if key in meta and list(meta[key]) != mine:
                raise CheckpointError(
                    f"{path}: field {key!r} is {meta[key]}, this prior has {mine}: the context "
                    "was learnt for other prompts (rows must be in the same order)"
                )
        with torch.no_grad():
            self.ctx.copy_(state["ctx"].to(self.ctx))
        return self

    def extra_repr(self) -> str:
        """Emotions and sizes."""
        return (f"emotions={list(self.emotion_names)}, n_ctx={self.n_ctx}, dim={self.dim}, "
                f"image_size={self.image_size}, freeze_clip={self.freeze_clip}")


def _create(open_clip: Any, name: str, weights: str | None) -> nn.Module:
    try:
        return open_clip.create_model(
            name, pretrained=weights, pretrained_image=False, pretrained_text=False,
            weights_only=True,
        )
    except RuntimeError as err:
        raise ValueError(
            f"{weights}: cannot load it into the open_clip model {name!r}: {err}"
        ) from err
