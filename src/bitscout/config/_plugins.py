"""Importing the user's own code named in a config: ``"package.module:attribute"`` specs
and the ``plugins`` list.

A config names user code by import path, never by file: the model
(``model = "mypkg.models:Net"``), the data (``dataset = "mypkg.data:make"``) and modules
that register runners, models or data sets when imported (``plugins = ["mypkg.metrics"]``).
The config loader imports the plugins before it validates anything else, so every process
that loads the same config (a ``--workers`` process, ``export``) registers the same things.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterable
from typing import Annotated, Any

from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError

from bitscout.config._rules import RULE_ERROR
from bitscout.errors import BitscoutError, ConfigError, did_you_mean

__all__ = ["Plugins", "import_module_of", "import_object", "import_plugins", "is_import_spec", "file_spec_hint", "SPEC_RULE"]


def is_import_spec(text: str) -> bool:
    """True when ``text`` has the form ``package.module:attribute`` (one colon, both sides set)."""
    module, sep, attr = text.partition(":")
    return bool(sep and module and attr and ":" not in attr and "/" not in text and "\\" not in text)


def import_module_of(
    spec: str, module_name: str, *, what: str, error: type[BitscoutError] = ConfigError
) -> Any:
    """Import ``module_name`` for ``spec``; the current folder is searched too.

    ``python -m bitscout`` puts the current folder on ``sys.path`` but the ``bitscout``
    console script does not; a module next to the config must be found either way.

    Raises:
        error: The module cannot be imported (or raised while importing); the message
            names ``what`` and ``spec``.
    """
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.append(cwd)
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        hint = file_spec_hint(spec)
        if hint:  # "nets.py:Net": a file name where the module's name belongs
            raise error(f"{what} {spec!r}: cannot import module {module_name!r}: {exc}{hint}") from exc
        raise error(
            f"{what} {spec!r}: cannot import module {module_name!r}: {exc}. Is it installed, "
            "or on PYTHONPATH (or in the folder you run bitscout from)?"
        ) from exc
    except BitscoutError:
        raise
    except Exception as exc:  # the user's module raised while being imported
        raise error(
            f"{what} {spec!r}: importing module {module_name!r} failed: {type(exc).__name__}: {exc}"
        ) from exc


def import_object(spec: str, *, what: str, error: type[BitscoutError] = ConfigError) -> Any:
    """The object ``spec`` (``"package.module:attribute"``, dotted attributes allowed) names.

    Args:
        spec: The import path.
        what: What the spec is for, to start messages with (``"model"``, ``"dataset"``).
        error: The error class raised.

    Raises:
        error: The spec's form is wrong, the module cannot be imported, or it has no such
            attribute.
    """
    if not is_import_spec(spec):
        raise error(f"{what} {spec!r} {SPEC_RULE}{file_spec_hint(spec)}")
    module_name, _, attr = spec.partition(":")
    obj = import_module_of(spec, module_name, what=what, error=error)
    for part in attr.split("."):
        owner = obj
        try:
            obj = getattr(owner, part)
        except AttributeError:
            names = [n for n in dir(owner) if not n.startswith("_")]
            hint = did_you_mean(part, names)
            raise error(
                f"{what} {spec!r}: module {module_name!r} has no attribute {attr!r}" + (f"; {hint}" if hint else "")
            ) from None
    return obj


#: The rule of an import spec, as messages state it.
SPEC_RULE = "must be 'package.module:attribute' (one colon between a module path and a name in it)"


def file_spec_hint(spec: str) -> str:
    """For a spec naming a file (``lib/nets.py:Net``), the import path to write instead."""
    module, sep, attr = spec.partition(":")
    if not sep or not attr or ":" in attr or not (module.endswith(".py") or "/" in module or "\\" in module):
        return ""
    parts = [p for p in module.removesuffix(".py").replace("\\", "/").split("/") if p not in ("", ".")]
    if not parts or any(p == ".." or not p.isidentifier() for p in parts):
        return "; name the module by its import path, with its folder on PYTHONPATH"
    dotted = ".".join(parts)
    return (
        f"; for the file {module}, write '{dotted}:{attr}' (run bitscout from the folder "
        f"holding {parts[0] + ('/' if len(parts) > 1 else '.py')}, or put that folder on PYTHONPATH)"
    )


def import_plugins(specs: Iterable[str]) -> None:
    """Import each plugin: ``"package.module"``, or ``"package.module:function"`` whose
    function is then called with no arguments (a hook that registers things).

    Importing a module twice is free (Python keeps it), so every config load may call this;
    a hook function is called once per process.

    Raises:
        ConfigError: A plugin cannot be imported, has no such function, or raised.
    """
    for spec in specs:
        what = "plugin"
        if ":" in spec:
            hook = import_object(spec, what=what)
            if spec in _HOOKS_CALLED:
                continue
            if not callable(hook):
                raise ConfigError(f"{what} {spec!r}: {spec.partition(':')[2]!r} is not callable")
            try:
                hook()
            except BitscoutError:
                raise
            except Exception as exc:
                raise ConfigError(f"{what} {spec!r}: calling it failed: {type(exc).__name__}: {exc}") from exc
            _HOOKS_CALLED.add(spec)
        else:
            import_module_of(spec, spec, what=what)


_HOOKS_CALLED: set[str] = set()


_PLUGINS_RULE = "must be a list of module paths ('package.module' or 'package.module:function')"


def _plugins_rule(value: Any) -> tuple[str, ...]:
    if not isinstance(value, (list, tuple)) or not all(
        isinstance(item, str) and item.strip() for item in value
    ):
        raise PydanticCustomError(RULE_ERROR, _PLUGINS_RULE)
    try:
        import_plugins(value)
    except ConfigError as exc:
        raise PydanticCustomError(RULE_ERROR, "{reason}", {"reason": str(exc)}) from None
    return tuple(value)


Plugins = Annotated[tuple[str, ...], BeforeValidator(_plugins_rule)]
"""The ``plugins`` key: validated by importing each one (so that what they register is
known to the rest of the config, which is validated after it)."""
