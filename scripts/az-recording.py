#!/usr/bin/env python3
"""Turns `az … --debug` logs into tests/fixtures/az/requests.json, the requests the
az_replay test sends again (issue 20).

Record against a daemon with a self-signed certificate, signed in as the README's
"Using the Azure CLI" says, each command of the fixture's `commands` list run as
    az ACR-COMMAND --debug > out-NN.txt 2> rec-NN.txt; echo "NN rc=$? ACR-COMMAND" >> cmds.txt
in one directory, then run this script there with the fixture's path. The run ids the
daemon gave (R, R2 below) become {run}, the test's git repository {repo}. Blob requests
(the upload and the log) are left out: az_e2e drives them with the real az.
"""
import json, re, sys
R = "swgs7i75rj"
R2 = "swoexsehfx"
def sub(t):
    return t.replace(R, "{run}").replace(R2, "{run}").replace("file:///tmp/azt/repo", "{repo}")
cmds = {}
for line in open("cmds.txt"):
    n, rc, rest = line.rstrip("\n").split(" ", 2)
    cmds[n] = (int(rc.split("=")[1]), rest)
out = []
P = "DEBUG: cli.azure.cli.core.sdk.policies: "
for n in sorted(cmds):
    rc, command = cmds[n]
    lines = open(f"rec-{n}.txt").read().splitlines()
    reqs = []
    cur = None
    i = 0
    while i < len(lines):
        l = lines[i]
        if l.startswith(P + "Request URL: "):
            url = l[len(P + "Request URL: "):].strip("'")
            path = re.sub(r"^https://[^/]+", "", url)
            cur = {"method": None, "path": sub(path), "body": None, "status": None}
            reqs.append(cur)
        elif cur and l.startswith(P + "Request method: "):
            cur["method"] = l[len(P + "Request method: "):].strip("'")
        elif cur and l == P + "Request body:":
            b = lines[i + 1][len(P):]
            if b != "This request has no body":
                cur["body"] = json.loads(sub(b))
            i += 1
        elif cur and l.startswith(P + "Response status: "):
            cur["status"] = int(l[len(P + "Response status: "):])
        i += 1
    reqs = [r for r in reqs if not r["path"].startswith("/arm-blobs/")]
    out.append({"command": "az " + sub(command), "exit": rc, "requests": reqs})
json.dump({"recorded_with": "azure-cli 2.91.0 --debug against slipway serve (issue 20); secrets are the test's own (xyz, pw-secret)", "commands": out}, open(sys.argv[1], "w"), indent=1)
