"""The model registry: the checkpoint folders under a root, loaded on first use and kept in memory."""

from __future__ import annotations

import functools
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from charrnn.hub import resolve as hub
from charrnn.checkpoint.folder import CONFIG, WEIGHTS, check_folder, find_checkpoints, read_config
from charrnn.errors import CharRNNError
from charrnn.paths import CHECKPOINTS_DIR

if TYPE_CHECKING:
    from charrnn.sampling.engine import SamplingEngine
    from charrnn.checkpoint.saving import Checkpoint
    from charrnn.sampling.process import RemoteEngine, SamplerProcess
    from charrnn.tokenizer import Tokenizer

SHIPPED_ORDER = ("lstm_best", "lstm", "gru", "rnn")  # listed first, in this order


class LoadedModel:
    """A model of the library: its tokenizer and sampling engine at once, its checkpoint (the torch model, for
    scoring, the Inside views, beam search) loaded on first use. With a sampling process the engine needs only the
    folder, so a Generate does not wait for this process to import torch and load the weights."""

    def __init__(self, tokenizer: Tokenizer, engine: SamplingEngine | RemoteEngine,
                 load: Callable[[], Checkpoint], checkpoint: Checkpoint | None = None):
        self.tokenizer = tokenizer
        self.engine = engine  # every visitor's samples of this model share its steps
        self._load, self._checkpoint = load, checkpoint
        self._lock = threading.Lock()

    @property
    def checkpoint(self) -> Checkpoint:
        with self._lock:
            if self._checkpoint is None:
                self._checkpoint = self._load()
            return self._checkpoint


class ModelLibrary:
    """The checkpoint folders under a root, and Hub ids (by default those of CHARRNN_MODELS or the README's
    models:), loaded on first use and kept in memory."""

    def __init__(self, root: Path | str = CHECKPOINTS_DIR, hub_ids: list[str] | None = None,
                 sampler: SamplerProcess | None = None, while_compiling: bool = False):
        """`sampler`: sample in that child process (the app's way, see sampler_process.py) rather than on
        threads of this one. `while_compiling`: the kernels are being compiled in another process (a fresh
        install): sample with torch until they are ready (engine.py)."""
        self.root = Path(root)
        self.sampler = sampler
        self.while_compiling = while_compiling
        self.hub_ids = hub.listed_models() if hub_ids is None else list(hub_ids)
        self._hub_paths: dict[str, Path] = {}  # resolved once: resolving asks the Hub
        self._loaded: dict[str, tuple[float, LoadedModel]] = {}
        self._lock = threading.Lock()
        self.skipped: dict[str, str] = {}  # broken folders: name -> what is wrong (shown in the log and the card)
        # Models added while the app runs (trained in the Train tab): name -> folder. Not in names(): who may
        # pick one is the training manager's to say.
        self.extra: dict[str, Path] = {}
        self.owners: dict[str, str] = {}  # a trained model -> the hash of its owner's session key
        self.share_trained = False  # the host lists trained models to everyone (CHARRNN_SHARE_TRAINED=1)

    def names(self) -> list[str]:
        """Text models: shipped ones first, then any other checkpoint folder under the root. A folder whose
        config cannot be read is left out and noted in `skipped`, so one broken folder never stops the app."""
        found = []
        for path in find_checkpoints(self.root):
            name = path.relative_to(self.root).as_posix()
            try:
                config = read_config(path)
            except CharRNNError as err:
                self.skip(name, err)
                continue
            if config.get("task") is None and name not in self.skipped:  # task models are not text generators
                found.append(name)
        order = {name: i for i, name in enumerate(SHIPPED_ORDER)}
        hub_ids = [name for name in self.hub_ids if name not in self.skipped]
        return sorted(found, key=lambda n: (order.get(n, len(order)), n)) + hub_ids

    def skip(self, name: str, error: Exception) -> None:
        if name not in self.skipped:
            self.skipped[name] = str(error)
            print(f"charrnn: skipped {name}: {error}", file=sys.stderr)

    def path(self, name: str) -> Path:
        """The folder of a model, checked directly: this runs on every streamed update, so it must not
        scan every checkpoint (the scan only words the error)."""
        if not isinstance(name, str) or not name:
            raise CharRNNError(f"the model must be the name of a model, got {name!r:.40}")
        if name in self.extra:
            path = self.extra[name]
            if not ((path / CONFIG).is_file() and (path / WEIGHTS).is_file()):
                raise CharRNNError(f"the model {name!r} has been deleted from this host")
            return path
        if name in self.hub_ids:
            if name not in self._hub_paths:
                self._hub_paths[name] = hub.resolve(name)
            return self._hub_paths[name]
        try:
            path = (self.root / name).resolve()
            found = (path.is_relative_to(self.root.resolve()) and (path / CONFIG).is_file()
                     and (path / WEIGHTS).is_file())
        except (OSError, ValueError):  # a name no file system accepts (a NUL byte, too long)
            found = False
        if not found:
            names = self.names()
            raise CharRNNError(f"no model named {name!r} under {self.root}; available: {', '.join(names) or 'none'}")
        return path

    def add(self, name: str, path: Path | str, owner: str | None = None) -> None:
        """Make a checkpoint folder outside the root loadable by name (a model trained in the app); `owner`: the
        hash of the session key that may use it (see for_viewer)."""
        self.extra[name] = Path(path)
        if owner is not None:
            self.owners[name] = owner

    def remove(self, name: str) -> None:
        self.extra.pop(name, None)
        self.owners.pop(name, None)
        with self._lock:
            self._loaded.pop(name, None)

    def info(self, name: str) -> dict:
        """config.json of a model, without loading its weights."""
        return read_config(self.path(name))

    def load(self, name: str) -> LoadedModel:
        """The model `name`, loaded once (again when its weights change). Its folder is checked here without torch;
        the weights are loaded here only where this process samples, else on first use of `checkpoint`."""
        path = self.path(name)
        stamp = (path / WEIGHTS).stat().st_mtime
        with self._lock:  # a retrained folder is reloaded; otherwise each model loads once
            cached = self._loaded.get(name)
            if cached is None or cached[0] != stamp:
                load = functools.partial(_load_checkpoint, name, path)
                if self.sampler is not None:
                    _, _, tokenizer = check_folder(path)
                    loaded = LoadedModel(tokenizer, self.sampler.engine(path), load)
                else:
                    from charrnn.sampling.engine import SamplingEngine

                    checkpoint = load()  # checks the folder itself
                    engine = SamplingEngine(checkpoint.model, checkpoint.tokenizer,
                                            while_compiling=self.while_compiling)
                    loaded = LoadedModel(checkpoint.tokenizer, engine, load, checkpoint)
                cached = (stamp, loaded)
                self._loaded[name] = cached
            return cached[1]


def _load_checkpoint(name: str, path: Path) -> Checkpoint:
    from charrnn.checkpoint.saving import load_checkpoint  # torch: imported once a model is loaded (see __init__.py)

    try:
        return load_checkpoint(path)
    except CharRNNError:
        raise
    except Exception as err:  # noqa: BLE001 - whatever a damaged folder does, the server stays up
        raise CharRNNError(f"the checkpoint {name} could not be loaded ({type(err).__name__}: {err})") from None


def check_folders(library: ModelLibrary) -> list[str]:
    """Check every checkpoint folder as far as it can be without loading it (check_folder: config, tokenizer,
    the weights' header), in well under a second and without torch: the app does this before it builds its
    pickers, and loads the models (check_all) once its page is up."""
    ready = []
    for name in library.names():
        if name in library.hub_ids:  # resolving a Hub id asks the Hub: left to check_all
            ready.append(name)
            continue
        try:
            check_folder(library.path(name))
            ready.append(name)
        except Exception as error:  # noqa: BLE001 - a broken folder must not stop the app
            library.skip(name, error)
    return ready


def check_all(library: ModelLibrary) -> list[str]:
    """Load every model once (the checks in load_checkpoint run here): a broken folder, whatever is wrong with
    it, is skipped and named in the log, so that pickers built afterwards list only models that work."""
    ready = []
    for name in library.names():
        try:
            library.load(name).checkpoint  # noqa: B018 - the weights, loaded and checked
            ready.append(name)
        except Exception as error:  # noqa: BLE001 - a broken folder must not stop the app
            library.skip(name, error)
    return ready


def warm_up(library: ModelLibrary) -> None:
    """Load every model (check_all) and run each for a few characters, so the first click is fast: a fresh
    install compiles the sampling kernels here (~9 s once; numba caches them on disk for later starts), and the
    sampling process, if any, starts and loads the models. A model that fails to load is skipped: the pickers of
    pages opened from now on leave it out."""
    if library.sampler is not None:
        library.sampler.start()  # its imports overlap with the loading here
        # The sampling process loads the models and steps each once now, while this one loads them for its own
        # checks: on a fresh install it samples with torch until the kernels are compiled (engine.py), so the
        # first Generate need not wait for the loading below, nor for the compiler.
        local = [name for name in library.names() if name not in library.skipped and name not in library.hub_ids]
        threading.Thread(target=_warm_sampler, args=(library, local), name="charrnn-warm-sampler",
                         daemon=True).start()
    from charrnn.sampling.process import SamplerStopped
    from charrnn.sampling.warm import wait_for_compiling

    ready = check_all(library)
    wait_for_compiling(timeout=300)  # started by the launch on a fresh install: compiling twice would halve both
    for name in list(ready):
        try:
            for _ in library.load(name).engine.stream("A", 2):
                pass
        except SamplerStopped as error:  # the process's trouble, not the model's: the next call starts another
            print(f"charrnn: {error}", file=sys.stderr)
        except Exception as error:  # noqa: BLE001 - a model that cannot sample must not stop the app
            library.skip(name, error)
            ready.remove(name)
    print(f"charrnn: {len(ready)} models ready ({', '.join(ready) or 'none'}); "
          f"{len(library.skipped)} broken folders skipped", file=sys.stderr, flush=True)


def _warm_sampler(library: ModelLibrary, names: list[str]) -> None:
    """Step each model once in the sampling process; what fails here is reported by warm_up's own pass."""
    for name in names:
        try:
            for _ in library.sampler.engine(library.path(name)).stream("A", 2):
                pass
        except Exception:  # noqa: BLE001 - warm_up loads and reports every model itself
            pass


class LibraryView:
    """The library as one visitor sees it: every model, except the trained models of other visitors (unless the
    host shares them), which answer as if they did not exist. The app hands each request a view, so every
    endpoint that takes a model name checks it; the service functions take a view where they take a library."""

    def __init__(self, library: ModelLibrary, viewer: str | None):
        self.library, self.viewer = library, viewer  # viewer: the hash of the visitor's session key, or None

    def __getattr__(self, name):  # skipped, sampler, hub_ids, ...: as the library has them
        return getattr(self.library, name)

    def may_use(self, name) -> bool:
        owner = self.library.owners.get(name) if isinstance(name, str) else None
        return owner is None or self.library.share_trained or owner == self.viewer

    def _checked(self, name):
        if not self.may_use(name):
            raise CharRNNError(f"no model named {name!r} on this host for this session")
        return name

    def path(self, name: str) -> Path:
        return self.library.path(self._checked(name))

    def info(self, name: str) -> dict:
        return self.library.info(self._checked(name))

    def load(self, name: str) -> LoadedModel:
        return self.library.load(self._checked(name))
