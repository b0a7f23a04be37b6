#!/usr/bin/env bash
# pyrun.sh BINARY KEY: p50/p99 of 500 sequential requests (after 50 warm-up) and median decision-us of 50 curl requests
BIN=$1; KEY=$2
BODY='{"model":"auto","messages":[{"role":"user","content":"review this function"}]}'
/work/main/target/release/switchyard-bench mock >/dev/null 2>&1 & M=$!
env SWITCHYARD_LOG=warn $BIN serve --config /tmp/iso/py.toml >/tmp/iso/gw.log 2>&1 & G=$!
for i in $(seq 60); do curl -s -o /dev/null http://127.0.0.1:18090/healthz 2>/dev/null && break; sleep 0.5; done
sleep 1
oha --no-tui -c 1 -n 50 -m POST -H "Authorization: Bearer $KEY" -H 'content-type: application/json' -d "$BODY" http://127.0.0.1:18090/v1/chat/completions --output-format quiet
oha --no-tui -c 1 -n 500 $RATE -m POST -H "Authorization: Bearer $KEY" -H 'content-type: application/json' -d "$BODY" http://127.0.0.1:18090/v1/chat/completions --output-format json -o /tmp/iso/py.json
us=$(for i in $(seq 50); do curl -s -D - -o /dev/null -H "Authorization: Bearer $KEY" -H 'content-type: application/json' -d "$BODY" http://127.0.0.1:18090/v1/chat/completions | grep -i x-switchyard-decision-us | tr -d '\r' | awk '{print $2}'; done | sort -n | awk '{a[NR]=$1} END {print a[int(NR/2)+1]}')
kill $G $M; wait 2>/dev/null
python3 -c "
import json;d=json.load(open('/tmp/iso/py.json'));p=d['latencyPercentiles'];s=d['statusCodeDistribution']
print('$(basename $BIN) $KEY p50 %.3f p99 %.3f decision-us median $us'%(p['p50']*1e3,p['p99']*1e3), s)"
