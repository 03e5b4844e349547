"""Root fixtures. Real peers (S3 server, camera, microphone, browser) live in tests/plugins/."""

from __future__ import annotations

pytest_plugins = [
    "tests.plugins.base",
    "tests.plugins.s3",
    "tests.plugins.recording",
    "tests.plugins.devices",
    "tests.plugins.browser",
    "tests.plugins.web",
    "tests.plugins.tsa",
    "tests.plugins.ldap",
]
