#!/usr/bin/env python3
"""Fetch an RSS 2.0 or Atom feed and write its newest items as JSON and Markdown.

runfleet passes parameters as flags:  --url URL [--limit N] [--out-dir DIR]
and a path in RUNFLEET_RESULT_PATH where this script writes a JSON summary that is
stored on the run. Standard library only, so it runs on any consumer.
"""

import argparse
import json
import os
import sys
import urllib.request
import xml.etree.ElementTree as ET

ATOM = "{http://www.w3.org/2005/Atom}"


def text(node, path, default=""):
    found = node.find(path)
    return (found.text or "").strip() if found is not None and found.text else default


def parse_feed(data):
    root = ET.fromstring(data)
    items = []
    if root.tag == ATOM + "feed":
        title = text(root, ATOM + "title")
        for entry in root.findall(ATOM + "entry"):
            link = entry.find(ATOM + "link")
            items.append({
                "title": text(entry, ATOM + "title"),
                "link": link.get("href", "") if link is not None else "",
                "published": text(entry, ATOM + "updated") or text(entry, ATOM + "published"),
                "summary": text(entry, ATOM + "summary"),
            })
    else:
        channel = root.find("channel")
        if channel is None:
            raise ValueError(f"not an RSS or Atom feed (root element <{root.tag}>)")
        title = text(channel, "title")
        for item in channel.findall("item"):
            items.append({
                "title": text(item, "title"),
                "link": text(item, "link"),
                "published": text(item, "pubDate"),
                "summary": text(item, "description"),
            })
    return title, items


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True, help="RSS or Atom feed URL")
    parser.add_argument("--limit", type=int, default=10, help="how many items to keep")
    parser.add_argument("--out-dir", default="out", help="where to write items.json and items.md")
    args = parser.parse_args()
    if args.limit < 1:
        parser.error("--limit must be at least 1")

    with urllib.request.urlopen(args.url, timeout=30) as resp:
        data = resp.read()
    title, items = parse_feed(data)
    items = items[: args.limit]

    os.makedirs(args.out_dir, exist_ok=True)
    json_path = os.path.join(args.out_dir, "items.json")
    md_path = os.path.join(args.out_dir, "items.md")
    with open(json_path, "w", encoding="utf-8") as f:
        json.dump({"feed": title, "items": items}, f, indent=2, ensure_ascii=False)
    with open(md_path, "w", encoding="utf-8") as f:
        f.write(f"# {title}\n\n")
        for it in items:
            f.write(f"- [{it['title']}]({it['link']})" + (f" — {it['published']}" if it["published"] else "") + "\n")

    summary = {
        "feed": title,
        "count": len(items),
        "titles": [it["title"] for it in items],
        "json": os.path.abspath(json_path),
        "markdown": os.path.abspath(md_path),
    }
    print(f"{title}: wrote {len(items)} items to {args.out_dir}")
    result_path = os.environ.get("RUNFLEET_RESULT_PATH")
    if result_path:
        with open(result_path, "w", encoding="utf-8") as f:
            json.dump(summary, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
