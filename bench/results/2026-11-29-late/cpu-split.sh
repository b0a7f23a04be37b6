#!/bin/bash
# ab3.sh BIN...: user and sys µs per request under wrk -c32 -d8s (rig small body)
cd /work/main
target/release/switchyard-bench mock --listen 127.0.0.1:18080 >/dev/null 2>&1 & M=$!
sleep 0.5
for BIN in "$@"; do
  SWITCHYARD_LOG=warn $BIN serve --config bench/rig.toml >/dev/null 2>&1 & P=$!
  for i in $(seq 50); do curl -s -o /dev/null http://127.0.0.1:18090/v1/models -H 'Authorization: Bearer sk-mock' && break; sleep 0.1; done
  BODY_FILE=/tmp/rigbodies/small.json HEADERS='Authorization: Bearer sk-mock' WRK_OUT=/dev/null wrk -t2 -c32 -d3s -s /work/shared/bench/wrk/post.lua http://127.0.0.1:18090/v1/chat/completions >/dev/null 2>&1
  read U0 S0 < <(awk '{print $14, $15}' /proc/$P/stat)
  CS0=$(grep -h ctxt /proc/$P/task/*/status | awk '{s+=$2} END {print s}')
  OUT=$(BODY_FILE=/tmp/rigbodies/small.json HEADERS='Authorization: Bearer sk-mock' WRK_OUT=/dev/null wrk -t2 -c32 -d8s -s /work/shared/bench/wrk/post.lua http://127.0.0.1:18090/v1/chat/completions 2>&1)
  read U1 S1 < <(awk '{print $14, $15}' /proc/$P/stat)
  CS1=$(grep -h ctxt /proc/$P/task/*/status | awk '{s+=$2} END {print s}')
  N=$(echo "$OUT" | awk '/requests in/{print $1}')
  echo "$(basename $BIN): $N req, user $(echo "($U1-$U0)*10000/$N" | bc -l | cut -c1-5) sys $(echo "($S1-$S0)*10000/$N" | bc -l | cut -c1-5) us/req, ctx switches/req $(echo "($CS1-$CS0)/$N" | bc -l | cut -c1-4)"
  kill $P; wait $P 2>/dev/null
done
kill $M; wait $M 2>/dev/null
