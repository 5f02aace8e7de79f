"""The raw baseline: plain `requests` paging the endpoints the tap pages, printing RECORD lines.

    python -m bench.baseline CONFIG users
    python -m bench.baseline CONFIG report reports/getOffice365ActiveUserDetail date=2026-11-24
    python -m bench.baseline CONFIG report reports/getMailboxUsageDetail "period='D7'"

No SDK, no retries, no typing: what a few lines of a script cost. The benchmark reports the tap's
records/s as a ratio of this one's, measured against the same emulator in the same run.
"""

from __future__ import annotations

import csv
import json
import sys

import requests

from tap_microsoft365 import schemas


def main(argv: list[str]) -> int:
    config = json.loads(open(argv[0]).read())  # noqa: SIM115 - a few plain lines
    graph = config["graph_url"] + "/v1.0"
    session = requests.Session()
    token = session.post(
        f"{config['authority_host']}/{config['tenant_id']}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": config["client_id"],
            "client_secret": config["client_secret"],
            "scope": f"{config['graph_url']}/.default",
        },
        timeout=60,
    ).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    write = sys.stdout.write
    if argv[1] == "users":
        select = ",".join(schemas.USER_COLUMNS.graph_names(list(schemas.USER["properties"])))
        url: str | None = f"{graph}/users?$select={select}&$top=999"
        while url:
            page = session.get(url, headers=headers, timeout=300).json()
            for user in page["value"]:
                write(json.dumps({"type": "RECORD", "stream": "users", "record": user}) + "\n")
            url = page.get("@odata.nextLink")
    else:
        path, params = argv[2], argv[3] if len(argv) > 3 else ""
        stream = path.rsplit("/", 1)[-1]
        answer = session.get(
            f"{graph}/{path}({params})" if params else f"{graph}/{path}",
            headers=headers,
            allow_redirects=False,
            timeout=300,
        )
        if answer.is_redirect:
            download = requests.get(answer.headers["Location"], stream=True, timeout=300)
        else:
            download = answer
        lines = (line.decode("utf-8-sig") for line in download.iter_lines())
        for row in csv.DictReader(lines):
            write(json.dumps({"type": "RECORD", "stream": stream, "record": row}) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
