"""Parses a /metrics answer with the Prometheus project's own parser and prints its
samples as JSON, so tests/metrics.rs checks what a real scraper would read.

Usage: parse_metrics.py SCRAPE
Reads the OpenMetrics text in the file SCRAPE (it must end with `# EOF`); prints one JSON object
mapping `name{label="value",...}` (labels sorted) to the sample's value. Exits 1, with
the parser's error, if the text is not valid OpenMetrics.
"""

import json
import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families


def main():
    with open(sys.argv[1], encoding="utf-8") as scrape:
        text = scrape.read()
    samples = {}
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
                samples[f"{sample.name}{{{labels}}}"] = sample.value
    except ValueError as error:
        print(f"not valid OpenMetrics: {error}", file=sys.stderr)
        sys.exit(1)
    json.dump(samples, sys.stdout)


if __name__ == "__main__":
    main()
