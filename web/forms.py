"""The base of the web's forms, so that Flask-WTF's untyped FlaskForm is subclassed in one place."""

from __future__ import annotations

from flask_wtf import FlaskForm


class CsrfForm(FlaskForm):  # type: ignore[misc]  # flask_wtf ships no type information: FlaskForm is Any to mypy
    """A form whose POST must carry the session's CSRF token (Flask-WTF); every form of the web derives from it."""
