"""The first requests of a fresh service that each need the tokenizer, sent at the same moment, all answer 200
(they used to race inside transformers' lazy imports: a 500 'cannot import name AutoTokenizer', and a null
memory estimate). A fresh interpreter is needed for a genuinely first import, hence the subprocess."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).with_name("race_first_requests.py")


def test_concurrent_first_requests_all_answer():
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run([sys.executable, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["status"] == {"stats": 200, "preview": 200, "validate": 200}, result["details"]
    assert result["estimate"] and result["estimate"]["unit"] == "GiB" and result["estimate"]["total"] > 0
