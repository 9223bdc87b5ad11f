"""A durable task that uses only the engine (no approvals), for ``settings_core``."""

from __future__ import annotations

from zart_django import durable, step


@step("hello")
def hello(name: str) -> str:
    return f"hello {name}"


@step("shout")
def shout(text: str) -> str:
    return text.upper()


@durable("core-greeting")
def greeting(name: str) -> str:
    return shout(hello(name))
