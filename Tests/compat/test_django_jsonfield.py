"""django-libsql-backend 0.1.3: a Django project with a JSONField migrates and queries against a node.

Django's SQLite schema editor puts `CHECK (JSON_VALID(...))` on every JSONField column, which SQLite
refuses in the schema when trusted_schema is off; the node's sandbox keeps JSON functions usable.
"""
import os
import subprocess
import sys
import tempfile
import textwrap

MODELS = """
from django.db import models


class Card(models.Model):
    holder = models.CharField(max_length=100)
    data = models.JSONField(default=dict)

    class Meta:
        app_label = "cards"
"""

SETTINGS = """
import os

SECRET_KEY = "compat"
INSTALLED_APPS = ["cards"]
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
DATABASES = {{
    "default": {{
        "ENGINE": "django_libsql",
        "NAME": {url!r},
        "AUTH_TOKEN": "",
    }}
}}
"""

SCRIPT = """
import django
from django.core.management import call_command

django.setup()
call_command("makemigrations", "cards", verbosity=0)
call_command("migrate", verbosity=0)

from cards.models import Card

Card.objects.create(holder="ada", data={"kind": "card", "floors": [1, 2]})
Card.objects.create(holder="grace", data={"kind": "badge"})
assert Card.objects.count() == 2
assert [c.holder for c in Card.objects.filter(data__kind="card")] == ["ada"]
assert Card.objects.get(holder="ada").data == {"kind": "card", "floors": [1, 2]}
print("django ok")
"""


def test_django_project_with_a_jsonfield_migrates_and_queries(database_url):
    project = tempfile.mkdtemp(prefix="shoal-django-")
    os.makedirs(os.path.join(project, "cards", "migrations"))
    for path, text in [
        ("cards/__init__.py", ""),
        ("cards/migrations/__init__.py", ""),
        ("cards/models.py", MODELS),
        ("settings.py", SETTINGS.format(url=database_url)),
    ]:
        with open(os.path.join(project, path), "w") as handle:
            handle.write(textwrap.dedent(text))
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=project,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "settings", "PYTHONPATH": project},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "django ok" in result.stdout
