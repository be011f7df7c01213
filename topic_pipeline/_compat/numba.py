"""An on-disk cache for the numba code of UMAP and NNDescent that numba itself will not cache.

A fresh process spends ~20 s compiling NNDescent (UMAP's neighbour search above 4,096 documents) and
a few seconds more on UMAP's layout. pynndescent cannot use numba's own cache for its core: those
functions take the distance function as an argument, and numba keys a cache entry by the argument
types, where a function's type names the function object's address in the process that compiled
it, so no later process ever finds the entry.

``enable`` gives those dispatchers a cache whose key names a function argument by its module,
qualified name and bytecode instead. A loaded entry is the very object code the first compile
produced (numba links callees into it), so results are bit-identical to a fresh compile on the same
machine and libraries. Entries live where numba keeps its own (the package's ``__pycache__``, or
``NUMBA_CACHE_DIR``) and are invalidated as numba's are: by the numba version, the CPU and the
source file's timestamp. Anything this cache cannot key safely (a closure as an argument) compiles as
usual.

NNDescent's driver (``nn_descent`` and ``nn_descent_internal``) reads ``numba.get_num_threads()``,
which numba compiles as a call through a ctypes pointer: an address of this process, so numba will
not cache it, and those two alone cost ~7 s of compilation in every process. ``enable`` rebuilds such
functions, same bytecode, with ``numba.get_num_threads`` bound to a kernel that asks the same
threading-layer function through a linker symbol, which caches.

Written for numba 0.68.1 (its ``FunctionCache._index_key``, ``CPUDispatcher._cache``,
``parallel._iget_num_threads``) and for the dispatchers of umap-learn 0.5.12 and pynndescent 0.7.0 that
it gives the cache or rebuilds (``SUPPORTED``). On any other version ``enable`` leaves everything as
numba and umap have it (each process compiles: a slower first fit, the same results) and says so once.

Compiling the kernels ahead of a sweep (``topic-pipeline compile``) is the engine's: ``engine.warmup``.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import sys
import types

from topic_pipeline._compat import check, installed_versions

log = logging.getLogger(__name__)

SUPPORTED = {"numba": ("0.68.1",), "umap-learn": ("0.5.12",), "pynndescent": ("0.7.0",)}
# Read once, at import. A test replaces an entry to make this process take the fallback.
INSTALLED = installed_versions(SUPPORTED)
FALLBACK = "UMAP and NNDescent compile in every process, as without this cache (slower, same results)"

# The modules whose uncached dispatchers get the cache.
CACHED_MODULE_PREFIXES = ("pynndescent", "umap")

_enabled = False


def supported() -> bool:
    """Whether ``enable`` may install the cache here; the one place this module decides."""
    return check(__name__, SUPPORTED, INSTALLED, FALLBACK)


class _UnstableKey(Exception):
    """An argument type this cache cannot name the same way in another process."""


def _function_identity(function) -> str:
    if function.__closure__:
        raise _UnstableKey(function.__qualname__)
    code = hashlib.sha256(function.__code__.co_code).hexdigest()[:16]
    return f"{function.__module__}.{function.__qualname__}:{code}"


def _stable_type(argument_type):
    from numba.core import types

    if isinstance(argument_type, types.Dispatcher):
        return ("dispatcher", _function_identity(argument_type.dispatcher.py_func))
    if isinstance(argument_type, types.BaseTuple):
        return ("tuple", tuple(_stable_type(t) for t in argument_type.types))
    if "Dispatcher(" in str(argument_type):
        raise _UnstableKey(str(argument_type))
    return argument_type


def _stable_key_cache_class():
    from numba.core import caching
    from numba.core.typing import signature

    class StableKeyCache(caching.FunctionCache):
        """numba's own per-function cache (same locations, same files), keyed by stable argument types."""

        def _index_key(self, sig, codegen):
            return super()._index_key(tuple(_stable_type(t) for t in sig), codegen)

        def load_overload(self, sig, target_context):
            try:
                self._index_key(sig, target_context.codegen())
            except _UnstableKey:
                return None
            try:
                compiled = super().load_overload(sig, target_context)
            except (ImportError, AttributeError):
                # The entry's code names a module or function that is no longer where it was when the
                # entry was written (our thread-count kernel moved, say): compile, and the save replaces it.
                return None
            if compiled is None:
                return None
            # The stored signature names the function arguments of the process that compiled it;
            # the dispatcher and its jitted callers must find the entry under this process's types.
            descriptor = copy.copy(compiled.fndesc)
            descriptor.argtypes = tuple(sig)
            return compiled._replace(signature=signature(compiled.signature.return_type, *sig), fndesc=descriptor)

        def save_overload(self, sig, data):
            try:
                self._index_key(sig, data.codegen)
            except _UnstableKey:
                return
            if data.library.has_dynamic_globals:
                return  # numba cannot store it (a ctypes call, say); it would warn each time
            super().save_overload(sig, data)

    return StableKeyCache


def _cacheable_num_threads():
    """A jitted ``numba.get_num_threads``: the threading layer's own function, reached by symbol."""
    import numba
    from numba.np.ufunc.parallel import _iget_num_threads

    @numba.njit
    def get_num_threads():
        return _iget_num_threads()

    return get_num_threads


def _reads_thread_count(dispatcher) -> bool:
    names = dispatcher.py_func.__code__.co_names
    return "numba" in names and "get_num_threads" in names


def _rebind_thread_count(module, names: list[str], get_num_threads) -> None:
    """Replace the module's dispatchers ``names`` by recompilable copies that read the thread count
    through ``get_num_threads``; callers in the module (and each other) find the copies by name."""
    import numba

    numba_view = types.ModuleType("numba")
    numba_view.__dict__.update(vars(numba))
    numba_view.get_num_threads = get_num_threads
    rebound_globals = dict(vars(module))
    rebound_globals["numba"] = numba_view
    for name in names:
        original = getattr(module, name)
        function = original.py_func
        rebuilt = types.FunctionType(
            function.__code__, rebound_globals, function.__name__, function.__defaults__, function.__closure__
        )
        rebuilt.__qualname__, rebuilt.__module__, rebuilt.__doc__ = (
            function.__qualname__,
            function.__module__,
            function.__doc__,
        )
        rebuilt.__kwdefaults__ = function.__kwdefaults__
        rebound = type(original)(rebuilt, locals=original.locals, targetoptions=dict(original.targetoptions))
        rebound_globals[name] = rebound
        setattr(module, name, rebound)


def enable() -> bool:
    """Give UMAP's and NNDescent's uncached dispatchers a persistent cache; True once enabled.

    Imports umap (and so pynndescent). Call it before the first UMAP fit of the process: dispatchers
    that have already compiled keep their code. Idempotent. False, with everything compiling as before
    (only slower), on versions this was not written for (``supported()``) or if numba's internals still
    turn out not to be what this was written against.
    """
    global _enabled
    if _enabled:
        return True
    if not supported():
        return False
    try:
        import umap  # noqa: F401 - imports pynndescent and every module whose dispatchers get the cache
        from numba.core.caching import NullCache
        from numba.core.registry import CPUDispatcher

        cache_class = _stable_key_cache_class()
        get_num_threads = None
        for name, module in list(sys.modules.items()):
            if module is None or not name.startswith(CACHED_MODULE_PREFIXES):
                continue
            uncached = {
                attribute: value
                for attribute, value in vars(module).items()
                if isinstance(value, CPUDispatcher)
                and isinstance(value._cache, NullCache)
                and not value.overloads
                # Only the module's own functions: an imported one is handled (once) in its module.
                and value.py_func.__module__ == name
            }
            readers = [attribute for attribute, value in uncached.items() if _reads_thread_count(value)]
            if readers:
                from numba.np.ufunc.parallel import _launch_threads

                # A cached kernel that calls the threading layer links against its symbols: load them first.
                _launch_threads()
                get_num_threads = get_num_threads or _cacheable_num_threads()
                _rebind_thread_count(module, readers, get_num_threads)
            for attribute in uncached:
                dispatcher = getattr(module, attribute)
                dispatcher._cache = cache_class(dispatcher.py_func)
    except (ImportError, AttributeError, TypeError, RuntimeError) as exc:
        log.warning("compiled-code cache not enabled (%s); UMAP and NNDescent compile in every process", exc)
        return False
    _enabled = True
    return True
