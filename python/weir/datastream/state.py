"""Keyed state from Python (PyFlink's ``pyflink.datastream.state``): handles a
``KeyedProcessFunction`` gets from its runtime context in ``open`` and uses in
``process_element`` and ``on_timer``, always for the current key. Values are pickled into the
engine's keyed state, so they are part of checkpoints and move with their key group when a job
rescales."""

from __future__ import annotations

import pickle
import threading
from typing import Any, Iterable, Iterator, List, Optional, Tuple

from weir.common.typeinfo import TypeInformation

# The context of the call running on this thread (set by the process function's wrapper).
_current = threading.local()


def _ctx() -> Any:
    ctx = getattr(_current, "ctx", None)
    if ctx is None:
        raise RuntimeError("keyed state can only be used inside process_element or on_timer")
    return ctx


def _dumps(v: Any) -> bytes:
    return pickle.dumps(v, protocol=pickle.HIGHEST_PROTOCOL)


class StateDescriptor:
    def __init__(self, name: str, type_info: Optional[TypeInformation] = None):
        if not name or ":" in name:
            raise ValueError(f"a state's name must be non-empty and have no ':' ({name!r})")
        self.name = name
        self.type_info = type_info


class ValueStateDescriptor(StateDescriptor):
    """One value per key."""


class ListStateDescriptor(StateDescriptor):
    """A list per key."""


class MapStateDescriptor(StateDescriptor):
    """A map per key."""

    def __init__(self, name: str, key_type_info: Optional[TypeInformation] = None, value_type_info: Optional[TypeInformation] = None):
        super().__init__(name, value_type_info)
        self.key_type_info = key_type_info


class ValueState:
    def __init__(self, name: str):
        self._name = name

    def value(self) -> Any:
        raw = _ctx().value_get(self._name)
        return None if raw is None else pickle.loads(raw)

    def update(self, value: Any) -> None:
        if value is None:
            self.clear()
        else:
            _ctx().value_put(self._name, _dumps(value))

    def clear(self) -> None:
        _ctx().clear("value", self._name)


class ListState:
    def __init__(self, name: str):
        self._name = name

    def get(self) -> List[Any]:
        return [pickle.loads(b) for b in _ctx().list_get(self._name)]

    def __iter__(self) -> Iterator[Any]:
        return iter(self.get())

    def add(self, value: Any) -> None:
        _ctx().list_add(self._name, _dumps(value))

    def add_all(self, values: Iterable[Any]) -> None:
        for v in values:
            self.add(v)

    def update(self, values: Iterable[Any]) -> None:
        _ctx().list_put(self._name, [_dumps(v) for v in values])

    def clear(self) -> None:
        _ctx().clear("list", self._name)


class MapState:
    def __init__(self, name: str):
        self._name = name

    def get(self, key: Any) -> Any:
        raw = _ctx().map_get(self._name, _dumps(key))
        return None if raw is None else pickle.loads(raw)

    def put(self, key: Any, value: Any) -> None:
        _ctx().map_put(self._name, _dumps(key), _dumps(value))

    def put_all(self, entries: dict) -> None:
        for k, v in entries.items():
            self.put(k, v)

    def remove(self, key: Any) -> None:
        _ctx().map_remove(self._name, _dumps(key))

    def contains(self, key: Any) -> bool:
        return _ctx().map_get(self._name, _dumps(key)) is not None

    def items(self) -> List[Tuple[Any, Any]]:
        return [(pickle.loads(k), pickle.loads(v)) for k, v in _ctx().map_items(self._name)]

    def keys(self) -> List[Any]:
        return [k for k, _ in self.items()]

    def values(self) -> List[Any]:
        return [v for _, v in self.items()]

    def is_empty(self) -> bool:
        return not _ctx().map_items(self._name)

    def clear(self) -> None:
        _ctx().clear("map", self._name)
