"""The pytest plugin, tested the way plugins are tested: with pytester."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest_plugins = ["pytester"]


def test_plugin_module_imports_nothing_heavy() -> None:
    code = (
        "import sys, mockserver.pytest_plugin\n"
        "heavy = [m for m in ('starlette', 'uvicorn', 'PIL', 'schemathesis', 'hypothesis', 'jsonschema_rs') "
        "if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def _behaviour_tests(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_fixtures="""
        import httpx
        import openai
        import pytest


        def test_generate(nanogpt_mock):
            with openai.OpenAI(api_key=nanogpt_mock.api_key, base_url=nanogpt_mock.openai_base_url) as client:
                result = client.images.generate(prompt="a cat", model="hidream", n=2)
            assert len(result.data) == 2
            (entry,) = nanogpt_mock.journal()
            assert entry["status"] == 200 and nanogpt_mock.api_key not in str(entry)
            assert entry["operation_id"] == "openaiGenerateImageApi"
            assert nanogpt_mock.balance() < 1000


        def test_edit_with_the_same_base_url(nanogpt_mock, tmp_path):
            from PIL import Image

            photo = tmp_path / "photo.png"
            Image.new("RGB", (64, 48), (10, 200, 10)).save(photo)
            with openai.OpenAI(api_key=nanogpt_mock.api_key, base_url=nanogpt_mock.openai_base_url) as client:
                with photo.open("rb") as fh:
                    result = client.images.edit(model="gpt-image-2", image=fh, prompt="add a hat")
            assert result.data[0].b64_json
            assert [e["operation_id"] for e in nanogpt_mock.journal()] == ["openaiEditImage"]
            assert nanogpt_mock.openai_edits_base_url == nanogpt_mock.openai_base_url  # deprecated alias


        def test_state_was_reset(nanogpt_mock):
            assert nanogpt_mock.journal() == []
            assert nanogpt_mock.balance() == 1000
            assert httpx.get(nanogpt_mock.inspector_url).headers["content-type"].startswith("text/html")


        def test_retry_after_forced_429(nanogpt_mock):
            nanogpt_mock.fail_next("rate_limit_exceeded")
            with openai.OpenAI(api_key=nanogpt_mock.api_key, base_url=nanogpt_mock.openai_base_url,
                               max_retries=1) as client:
                client.images.generate(prompt="x")
            assert [e["status"] for e in nanogpt_mock.journal()] == [429, 200]


        def test_empty_balance_and_clock(nanogpt_mock):
            nanogpt_mock.set_balance(0)
            with httpx.Client(base_url=nanogpt_mock.base_url, headers=nanogpt_mock.headers) as client:
                assert client.post("/v1/images/generations", json={"prompt": "x"}).status_code == 402
                nanogpt_mock.set_balance(5)
                r = client.post("/v1/images/generations", json={"prompt": "x", "response_format": "url"})
                url = r.json()["data"][0]["url"]
                nanogpt_mock.advance_clock(3601)
                assert client.get(url).status_code == 410


        @pytest.mark.anyio
        async def test_in_process(nanogpt_mock_asgi):
            import io
            from PIL import Image

            buf = io.BytesIO()
            Image.new("RGB", (32, 32), (200, 10, 10)).save(buf, format="PNG")
            png = buf.getvalue()
            async with nanogpt_mock_asgi.client(headers=nanogpt_mock_asgi.headers) as client:
                r = await client.post("/api/v1/images", json={"model": "gpt-image-2", "prompt": "x"})
            assert r.status_code == 200
            async with openai.AsyncOpenAI(api_key="k", base_url=nanogpt_mock_asgi.openai_base_url,
                                          http_client=nanogpt_mock_asgi.client()) as sdk:
                result = await sdk.images.generate(prompt="x")
                edited = await sdk.images.edit(image=("in.png", png, "image/png"), prompt="x")
            assert result.data[0].b64_json and edited.data[0].b64_json
        """,
        test_key="""
        def test_key_from_the_command_line(nanogpt_mock_asgi, nanogpt_mock):
            assert nanogpt_mock_asgi.api_key == nanogpt_mock.api_key == "sk-from-cli"
        """,
    )


def _readme_tests(pytester: pytest.Pytester) -> int:
    """The README's "Testing your app" block, as it is written; returns how many tests it holds."""
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("## Testing your app", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    pytester.makepyfile(test_readme=code)
    return code.count("\ndef test_") + code.count("\nasync def test_")


def test_fixtures_sdk_calls_options_and_the_readme_examples(pytester: pytest.Pytester) -> None:
    """One pytest run in a subprocess (one interpreter start) holds all the plugin's user-facing tests."""
    _behaviour_tests(pytester)
    readme_tests = _readme_tests(pytester)
    pytester.makeconftest(
        """
        import inspect

        import pytest


        def pytest_collection_modifyitems(items):
            for item in items:  # the README leaves the async plugin to the reader; anyio here
                if inspect.iscoroutinefunction(getattr(item, "function", None)):
                    item.add_marker(pytest.mark.anyio)


        @pytest.fixture
        def anyio_backend():
            return "asyncio"
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q", "--nanogpt-mock-api-key", "sk-from-cli")
    result.assert_outcomes(passed=6 + 1 + readme_tests)


def test_options_are_in_the_help(pytester: pytest.Pytester) -> None:
    pytester.runpytest_inprocess("--help").stdout.fnmatch_lines(
        ["*--nanogpt-mock-api-key*", "*--nanogpt-mock-catalog*"]
    )
