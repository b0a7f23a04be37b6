#!/bin/bash
# prof2.sh BODY OUT: flat perf profile of switchyard under wrk -c32 with BODY
cd /work/main
target/release/switchyard-bench mock --listen 127.0.0.1:18080 >/dev/null 2>&1 & M=$!
SWITCHYARD_LOG=warn target/release/switchyard serve --config bench/rig.toml >/dev/null 2>&1 & P=$!
for i in $(seq 50); do curl -s -o /dev/null http://127.0.0.1:18090/v1/models -H 'Authorization: Bearer sk-mock' && break; sleep 0.1; done
BODY_FILE=$1 HEADERS='Authorization: Bearer sk-mock' WRK_OUT=/dev/null wrk -t2 -c32 -d3s -s /work/shared/bench/wrk/post.lua http://127.0.0.1:18090/v1/chat/completions >/dev/null 2>&1
T0=$(awk '{print $14+$15}' /proc/$P/stat)
perf record -F 1999 -p $P -o $2 -- sleep 8 >/dev/null 2>&1 &
R=$!
OUT=$(BODY_FILE=$1 HEADERS='Authorization: Bearer sk-mock' WRK_OUT=/dev/null wrk -t2 -c32 -d8s -s /work/shared/bench/wrk/post.lua http://127.0.0.1:18090/v1/chat/completions 2>&1)
wait $R
T1=$(awk '{print $14+$15}' /proc/$P/stat)
N=$(echo "$OUT" | awk '/requests in/{print $1}')
echo "$OUT" | grep -E 'Requests/sec|Non-2xx'
echo "cpu $(echo "($T1-$T0)*1000000/$(getconf CLK_TCK)/$N" | bc -l | cut -c1-6) us/req (perf running)"
kill $P $M; wait 2>/dev/null
