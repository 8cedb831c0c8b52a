"""``segstream-consumer`` refusing to start: exit code 2, the fields named, no value echoed."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from support.commands import run_create_topics

TOKEN = "tok-7Hq2ZpX9wL4mVb8N"


def start(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SEGSTREAM_")}
    return run_create_topics(clean | env, cwd=tmp_path, timeout=60)  # cwd: no .env file here


def test_token_and_token_file_both_set_exit_2_naming_fields_without_the_token(
    tmp_path: Path,
) -> None:
    token_file = tmp_path / "crm-token"
    token_file.write_text(TOKEN)
    result = start(
        tmp_path,
        SEGSTREAM_CONSUMER_CRM_TOKEN=TOKEN,
        SEGSTREAM_CONSUMER_CRM_TOKEN_FILE=str(token_file),
    )
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "crm_token" in output
    assert "crm_token_file" in output
    # Not the token, and not the first characters pydantic used to quote.
    assert TOKEN[:6] not in output
    assert "Traceback" not in output


def test_an_invalid_value_names_its_field_and_exits_2(tmp_path: Path) -> None:
    result = start(tmp_path, SEGSTREAM_CONSUMER_CRM_TIMEOUT_S="-1")
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "crm_timeout_s" in output
    assert "Traceback" not in output
