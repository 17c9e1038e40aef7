#!/bin/sh
# Start Prometheus with the scrape token from the environment (written to a file only this user reads).
set -eu
: "${LEPTON_SCRAPE_TOKEN:?set LEPTON_SCRAPE_TOKEN: a token of LEPTON_API_TOKENS with the read scope}"
umask 077
printf '%s' "$LEPTON_SCRAPE_TOKEN" >/tmp/scrape-token
exec prometheus --config.file=/etc/prometheus/prometheus.yml --storage.tsdb.path=/prometheus \
    --web.listen-address=0.0.0.0:9090 "$@"
