"""Structural checks of deploy/Dockerfile (run by scripts/check-deploy.sh, offline)."""
import sys

from dockerfile_parse import DockerfileParser

parser = DockerfileParser(path=sys.argv[1])
stages = [i for i in parser.structure if i["instruction"] == "FROM"]
assert len(stages) >= 2, "a multi-stage build: builder and runtime"
final = parser.structure[stages[-1]["startline"]:]
final = [i for i in parser.structure if i["startline"] >= stages[-1]["startline"]]
instructions = {i["instruction"] for i in final}
for needed in ["USER", "ENTRYPOINT", "EXPOSE", "COPY"]:
    assert needed in instructions, f"the runtime stage needs {needed}"
user = [i["value"] for i in final if i["instruction"] == "USER"][-1]
assert not user.split(":")[0] in ("0", "root"), f"the runtime stage must not run as root ({user})"
exposed = " ".join(i["value"] for i in final if i["instruction"] == "EXPOSE").split()
assert "8080" in exposed and "9090" in exposed, f"API and admin ports exposed ({exposed})"
print(f"{sys.argv[1]}: ok ({len(stages)} stages, runs as {user})")
