"""Train the CDRL SPFEM system, stage by stage: `accelerate launch recipes/spfem/train.py`.

    accelerate launch recipes/spfem/train.py [--config FILE] [--stages a,b] [--resume]
                                             [key=value ...]

With no argument it runs the demo (`configs/demo.yaml`: SynthTalk at 64 px, every stage, on
the CPU in about 15 minutes). Stages, in order, each in `<run_dir>/<stage>/` and skipped
when its `DONE` marker exists:

    prepare      SynthTalk generation (or conversion of MEAD / RAVDESS) when shards are missing
    audio_prior  SynthTalk only: PhonemeAudioPrior pre-trained on per-frame phoneme ids
    clip         SynthTalk only: a tiny open_clip model trained on frames + captions
    ccrl         content encoder (EmotionAwareNCE over DTW-aligned parallel windows)
    cerl         emotion encoder (EmotionAugmentedNCE with the emotion prompt prior)
    spfem        the generator, with CDRL supervision from the frozen encoders

Exit status: 0 done, 2 bad config or command line, 3 a NaN / inf loss (the last good state is
kept; fix and rerun with --resume), 1 any other error.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
import warnings
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # the recipe's own modules (config, model, loop, ...)
    sys.path.insert(0, str(HERE))

import torch  # noqa: E402
from config import STAGES, SYNTHTALK_ONLY, Config, check_config  # noqa: E402
from configlib import ConfigError, load_config, save_config  # noqa: E402

DEFAULT_CONFIG = HERE / "configs" / "demo.yaml"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line.

    Args:
        argv: Arguments (default `sys.argv[1:]`).

    Returns:
        The parsed arguments.
    """
    p = argparse.ArgumentParser(
        prog="accelerate launch recipes/spfem/train.py",
        description="Train the CDRL SPFEM system stage by stage (default: the SynthTalk demo).",
    )
    p.add_argument("--config", default=str(DEFAULT_CONFIG), help="YAML config (default: demo)")
    p.add_argument("--stages", default=None,
                   help=f"comma-separated subset of {','.join(STAGES)} (default: the config's)")
    p.add_argument("--resume", action="store_true",
                   help="continue unfinished stages from their last saved state")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    return p.parse_args(argv)


def load(args: argparse.Namespace) -> Config:
    """The checked config with overrides and `--stages`.

    Args:
        args: Parsed arguments.

    Returns:
        The config.

    Raises:
        ConfigError: Naming the file and key.
    """
    overrides = list(args.overrides)
    if args.stages is not None:
        names = [s.strip() for s in args.stages.split(",") if s.strip()]
        overrides.append(f"stages=[{','.join(names)}]")
    cfg = load_config(Config, args.config, overrides)
    return check_config(cfg, args.config)


def _threads(cfg: Config) -> int:
    n = cfg.runtime.threads
    if n:
        return n
    local = int(os.environ.get("LOCAL_WORLD_SIZE", os.environ.get("WORLD_SIZE", "1")))
    return max(1, (os.cpu_count() or 1) // max(1, local))


def _tensorboard_available() -> bool:
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return False
    return True


_WARNED: list[bool] = []


def make_accelerator(cfg: Config, stage: str) -> Any:
    """A fresh Accelerator for one stage (its own prepared objects and tracker run).

    Args:
        cfg: The config.
        stage: Stage name (the TensorBoard run name).

    Returns:
        The accelerator.
    """
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration

    r = cfg.runtime
    log_with = None
    if r.tensorboard:
        if _tensorboard_available():
            log_with = "tensorboard"
        elif int(os.environ.get("RANK", "0")) == 0 and not _WARNED:
            _WARNED.append(True)
            warnings.warn("runtime.tensorboard: the tensorboard package is not installed; "
                          "scalars go to <run_dir>/<stage>/scalars.jsonl only (pip install "
                          "tensorboard)", stacklevel=2)  # fmt: skip
    acc = Accelerator(
        cpu=r.cpu or not torch.cuda.is_available(),
        mixed_precision=r.mixed_precision,
        gradient_accumulation_steps=r.gradient_accumulation,
        log_with=log_with,
        project_config=ProjectConfiguration(project_dir=cfg.run_dir,
                                            logging_dir=str(Path(cfg.run_dir) / "tensorboard")),
    )  # fmt: skip
    if log_with is not None:
        acc.init_trackers(stage)
    return acc


def settings(cfg: Config, steps: int, schedule: str = "constant") -> Any:
    """Loop settings of a stage.

    Args:
        cfg: The config.
        steps: The stage's steps.
        schedule: Learning-rate schedule (`loop.lr_scale`).

    Returns:
        `loop.LoopSettings`.
    """
    from loop import LoopSettings

    r = cfg.runtime
    return LoopSettings(steps=steps, save_every=r.save_every, log_every=r.log_every,
                        sample_every=r.sample_every, keep_states=r.keep_states,
                        progress=r.progress, gradient_accumulation=r.gradient_accumulation,
                        debug_exit_after_save=r.debug_exit_after_save,
                        debug_nan_step=r.debug_nan_step, schedule=schedule)  # fmt: skip


# ----------------------------------------------------------------------------------- stages


def run_prepare(cfg: Config, acc: Any, path: Path, resume: bool) -> None:
    """Generate / convert the shards and record their facts (`prepare/info.json`)."""
    from loop import finish_stage, write_json
    from prepare import prepare_data

    t0 = time.perf_counter()
    info = prepare_data(cfg, main=acc.is_main_process, progress=cfg.runtime.progress,
                        wait=acc.wait_for_everyone)  # fmt: skip
    if acc.is_main_process:
        path.mkdir(parents=True, exist_ok=True)
        summary = info.pop("summary", None)
        write_json(path / "info.json", info)
        metrics = {"seconds": time.perf_counter() - t0, "made": info["made"],
                   "splits": info["splits"]}  # fmt: skip
        if summary is not None:
            metrics["tool_summary"] = summary
        finish_stage(path, None, metrics)
    acc.wait_for_everyone()


def _context(cfg: Config, acc: Any) -> Any:
    from model import read_run_info
    from stages import Context

    info = read_run_info(cfg.run_dir)
    return Context(cfg, Path(cfg.run_dir), Path(info["root"]), info, acc.process_index,
                   acc.num_processes, acc.device)  # fmt: skip


def _skip_stage(path: Path, acc: Any, why: str) -> None:
    from loop import finish_stage

    acc.print(f"[{path.name}] nothing to train: {why}")
    finish_stage(path, None, {"skipped": why}, main=acc.is_main_process)
    acc.wait_for_everyone()


def run_audio_prior(cfg: Config, acc: Any, path: Path, resume: bool) -> None:
    """Pre-train the PhonemeAudioPrior on SynthTalk's per-frame phoneme ids."""
    from loop import finish_stage, train
    from model import build_audio_prior
    from stages import TRAINING_KEYS, PhonemeObjective, phoneme_accuracy, sample_stream

    if cfg.audio_prior.kind != "phoneme":
        return _skip_stage(path, acc, f"audio_prior.kind is {cfg.audio_prior.kind!r}")
    ctx = _context(cfg, acc)
    a = cfg.audio_prior
    prior = build_audio_prior(cfg, ctx.fps)
    objective = PhonemeObjective(prior, ctx.sample_rate, ctx.fps)
    opt = torch.optim.Adam(prior.parameters(), lr=a.lr)
    stream = sample_stream(ctx, split=cfg.data.train_split, batch_size=a.batch_size,
                           window=a.window, seed=cfg.seed + 1, windows_per_clip=2,
                           keys=(*TRAINING_KEYS, "phoneme_id"))  # fmt: skip
    t0 = time.perf_counter()
    objective, last = train("audio_prior", accelerator=acc, stage_path=path, objective=objective,
                            optimizer=opt, stream=stream, settings=settings(cfg, a.steps),
                            resume=resume)  # fmt: skip
    seconds = time.perf_counter() - t0
    metrics: dict[str, Any] = {"steps": a.steps, "seconds": seconds, "final": last}
    if acc.is_main_process:
        metrics["phoneme_accuracy"] = phoneme_accuracy(ctx, objective.prior, 64)
    meta = {"num_phonemes": objective.prior.num_phonemes, "dim": a.dim, "width": a.width}
    finish_stage(path, objective.prior.state_dict(), metrics, meta, main=acc.is_main_process)
    acc.wait_for_everyone()


def run_clip(cfg: Config, acc: Any, path: Path, resume: bool) -> None:
    """Train the tiny open_clip model on SynthTalk frames and captions."""
    from loop import finish_stage, train
    from model import build_emotion_prior
    from stages import ClipObjective, _speakers_of, clip_zero_shot, sample_stream

    if cfg.clip.kind != "synthtalk":
        return _skip_stage(path, acc, f"clip.kind is {cfg.clip.kind!r} (pretrained weights)")
    ctx = _context(cfg, acc)
    c = cfg.clip
    prior = build_emotion_prior(cfg, ctx.emotion_names, trained_clip=False, freeze_clip=False)
    prior.ctx.requires_grad_(False)  # the prompt context is CERL's; here only CLIP trains
    objective = ClipObjective(prior, _speakers_of(ctx.root), ctx.emotion_names,
                              ctx.distributed)  # fmt: skip
    params = [p for p in objective.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=c.lr, weight_decay=c.weight_decay)
    stream = sample_stream(ctx, split=cfg.data.train_split, batch_size=c.batch_size, window=1,
                           seed=cfg.seed + 2, windows_per_clip=4)  # fmt: skip
    t0 = time.perf_counter()
    objective, last = train("clip", accelerator=acc, stage_path=path, objective=objective,
                            optimizer=opt, stream=stream, settings=settings(cfg, c.steps),
                            resume=resume)  # fmt: skip
    metrics: dict[str, Any] = {"steps": c.steps, "seconds": time.perf_counter() - t0,
                               "final": last}  # fmt: skip
    if acc.is_main_process:
        metrics["zero_shot_emotion"] = clip_zero_shot(ctx, objective, 64)
    finish_stage(path, objective.prior.clip.state_dict(), metrics, {"kind": "synthtalk"},
                 main=acc.is_main_process)  # fmt: skip
    acc.wait_for_everyone()


def run_ccrl(cfg: Config, acc: Any, path: Path, resume: bool) -> None:
    """Train the content encoder (CCRL) over DTW-aligned parallel windows."""
    from loop import finish_stage, train
    from model import build_content_encoder, load_audio_prior
    from stages import CCRLObjective, build_ccrl, ccrl_probes, group_stream

    ctx = _context(cfg, acc)
    c = cfg.ccrl
    audio = load_audio_prior(cfg, ctx.run_dir, ctx.fps).to(acc.device)
    encoder = build_content_encoder(cfg, audio.dim)
    objective = CCRLObjective(build_ccrl(encoder, cfg, ctx.distributed), audio,
                              ctx.sample_rate, ctx.fps)  # fmt: skip
    opt = torch.optim.Adam([p for p in objective.parameters() if p.requires_grad], lr=c.lr)
    stream = group_stream(ctx, split=cfg.data.train_split, batch_size=c.batch_size,
                          emotions=c.emotions, window=c.window, seed=cfg.seed + 3)  # fmt: skip
    t0 = time.perf_counter()
    objective, last = train("ccrl", accelerator=acc, stage_path=path, objective=objective,
                            optimizer=opt, stream=stream, settings=settings(cfg, c.steps),
                            resume=resume)  # fmt: skip
    metrics: dict[str, Any] = {"steps": c.steps, "seconds": time.perf_counter() - t0,
                               "final": last}  # fmt: skip
    enc = objective.ccrl.encoder
    if acc.is_main_process and c.probe_windows:
        metrics["probes"] = ccrl_probes(ctx, enc, audio, c.probe_windows)
    finish_stage(path, enc.state_dict(), metrics, {"audio_dim": audio.dim},
                 main=acc.is_main_process)  # fmt: skip
    acc.wait_for_everyone()


def run_cerl(cfg: Config, acc: Any, path: Path, resume: bool) -> None:
    """Train the emotion encoder (CERL) with the emotion prompt prior."""
    from loop import finish_stage, train
    from model import build_emotion_encoder, build_emotion_prior, cerl_state
    from stages import build_cerl, cerl_probes, emotion_stream

    ctx = _context(cfg, acc)
    c = cfg.cerl
    prior = build_emotion_prior(cfg, ctx.emotion_names, ctx.run_dir)
    encoder = build_emotion_encoder(cfg, prior)
    objective = build_cerl(encoder, prior, cfg, ctx.emotion_names, ctx.distributed)
    opt = torch.optim.Adam([p for p in objective.parameters() if p.requires_grad], lr=c.lr)
    stream = emotion_stream(ctx, split=cfg.data.train_split, emotions=c.emotions,
                            per_emotion=c.per_emotion, window=c.window,
                            seed=cfg.seed + 4)  # fmt: skip
    t0 = time.perf_counter()
    objective, last = train("cerl", accelerator=acc, stage_path=path, objective=objective,
                            optimizer=opt, stream=stream, settings=settings(cfg, c.steps),
                            resume=resume)  # fmt: skip
    metrics: dict[str, Any] = {"steps": c.steps, "seconds": time.perf_counter() - t0,
                               "final": last}  # fmt: skip
    if acc.is_main_process and c.probe_windows:
        metrics["probes"] = cerl_probes(ctx, objective.encoder, c.probe_windows)
    finish_stage(path, cerl_state(objective), metrics, {"dim": prior.dim},
                 main=acc.is_main_process)  # fmt: skip
    acc.wait_for_everyone()


def spfem_parts(cfg: Config, ctx: Any) -> tuple[Any, torch.optim.Optimizer, Any]:
    """The spfem stage's objective (fresh generator, the run's frozen supervisors), its
    optimizer and its training stream (also used by bench/generator_fit.py).

    Args:
        cfg: The config.
        ctx: The run context (`stages.Context`).

    Returns:
        `(objective, optimizer, stream)`.
    """
    from model import (
        build_emotion_prior,
        load_audio_prior,
        load_content_encoder,
        load_emotion_encoder,
    )
    from stages import Supervisors, build_spfem, group_stream

    s = cfg.spfem
    audio = load_audio_prior(cfg, ctx.run_dir, ctx.fps)
    prior = build_emotion_prior(cfg, ctx.emotion_names, ctx.run_dir)
    emotion = load_emotion_encoder(cfg, ctx.run_dir, prior)
    content = load_content_encoder(cfg, ctx.run_dir, audio.dim)
    for m in (audio, prior, emotion, content):
        m.to(ctx.device)
    with torch.no_grad():
        table = prior.prior().detach().float()
    sup = Supervisors(audio, content, emotion, prior, table)
    objective = build_spfem(cfg, sup, prior.dim, ctx.sample_rate, ctx.fps)
    opt = torch.optim.Adam([p for p in objective.parameters() if p.requires_grad], lr=s.lr,
                           betas=tuple(s.betas))  # fmt: skip
    stream = group_stream(ctx, split=cfg.data.train_split, batch_size=s.batch_size,
                          emotions=2, window=s.window, seed=cfg.seed + 5,
                          with_reference=s.pairs == "reference")  # fmt: skip
    return objective, opt, stream


def run_spfem(cfg: Config, acc: Any, path: Path, resume: bool) -> None:
    """Train the generator with the frozen CDRL supervisors."""
    from loop import finish_stage, train
    from stages import sample_grid, spfem_metrics, write_png

    ctx = _context(cfg, acc)
    s = cfg.spfem
    objective, opt, stream = spfem_parts(cfg, ctx)
    code_dim = objective.generator.code_dim

    def sample(obj: Any, batch: Any, step: int) -> None:
        write_png(path / "samples" / f"step-{step:06d}.png", sample_grid(obj, batch, s.samples))

    t0 = time.perf_counter()
    objective, last = train("spfem", accelerator=acc, stage_path=path, objective=objective,
                            optimizer=opt, stream=stream,
                            settings=settings(cfg, s.steps, s.schedule), resume=resume,
                            sample=sample)  # fmt: skip
    metrics: dict[str, Any] = {"steps": s.steps, "seconds": time.perf_counter() - t0,
                               "variant": s.variant, "final": last}  # fmt: skip
    if acc.is_main_process:
        metrics["held_out"] = spfem_metrics(ctx, objective, 8)
    extra = None
    if objective.discriminator is not None:
        extra = {"discriminator.safetensors": objective.discriminator.state_dict()}
    finish_stage(path, objective.generator.state_dict(), metrics,
                 {"code_dim": code_dim, "variant": s.variant}, main=acc.is_main_process,
                 extra_weights=extra)  # fmt: skip
    acc.wait_for_everyone()


RUNNERS = {"prepare": run_prepare, "audio_prior": run_audio_prior, "clip": run_clip,
           "ccrl": run_ccrl, "cerl": run_cerl, "spfem": run_spfem}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Run the stages of a config.

    Args:
        argv: Arguments (default `sys.argv[1:]`).

    Returns:
        The exit status (0 done, 2 config error, 3 non-finite loss).
    """
    args = parse_args(argv)
    try:
        cfg = load(args)
    except (ConfigError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    from loop import NonFiniteLoss
    from model import is_done, stage_dir
    from stages import seed_everything

    torch.set_num_threads(_threads(cfg))
    run_dir = Path(cfg.run_dir)
    rank = int(os.environ.get("RANK", "0"))
    if rank == 0:
        command = "accelerate launch recipes/spfem/train.py " + shlex.join(
            sys.argv[1:] if argv is None else argv)
        save_config(cfg, run_dir / "config.yaml", command.strip())
    for i, stage in enumerate(cfg.stages):
        path = stage_dir(run_dir, stage)
        if is_done(run_dir, stage):
            if rank == 0:
                print(f"[{stage}] complete ({path / 'DONE'}), skipped", flush=True)
            continue
        if stage in SYNTHTALK_ONLY and cfg.data.corpus != "synthtalk":
            pass  # the runner records the skip (pretrained weights are used instead)
        acc = make_accelerator(cfg, stage)
        seed_everything(cfg.seed * 100 + i)
        acc.print(f"[{stage}] starting ({acc.num_processes} process(es), device {acc.device}, "
                  f"{torch.get_num_threads()} threads each)")  # fmt: skip
        t0 = time.perf_counter()
        try:
            RUNNERS[stage](cfg, acc, path, args.resume)
        except NonFiniteLoss as err:
            print(f"error: {err}", file=sys.stderr, flush=True)
            return 3
        except (ConfigError, FileExistsError) as err:
            print(f"error: {err}", file=sys.stderr, flush=True)
            return 2
        finally:
            acc.end_training()
        acc.print(f"[{stage}] done in {time.perf_counter() - t0:.1f} s -> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
