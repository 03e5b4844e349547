"""The base of the web's forms, so that Flask-WTF's untyped FlaskForm is subclassed in one place."""

from __future__ import annotations

from flask_wtf import FlaskForm

from web.errors import BadRequest


class CsrfForm(FlaskForm):  # type: ignore[misc]  # flask_wtf ships no type information: FlaskForm is Any to mypy
    """A form whose POST must carry the session's CSRF token (Flask-WTF); every form of the web derives from it."""

    def require_valid(self) -> None:
        """Validate the POST (CSRF token included); a refusal is a 400 naming the first field and what is wrong."""
        if not self.validate_on_submit():
            if not self.errors:
                raise BadRequest("form refused")
            name, messages = next(iter(self.errors.items()))
            raise BadRequest(f"{name}: {messages[0]}")
