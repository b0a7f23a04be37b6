import re,collections,subprocess,sys
out=subprocess.run(['perf','report','-i',sys.argv[1],'--no-children','--sort','dso,sym','--stdio'],capture_output=True,text=True).stdout
K='[kernel.kallsyms]'
cats=[
 ('kernel: loopback TCP send/receive and waking the peer', lambda d,s: d==K and re.search(r'tcp|ip_|skb|sock|net|dev_|napi|softirq|_raw_spin_unlock_irqrestore|__local_bh|copy_|iov|csum|inet|loopback|nf_|bbr|__check_object_size|__virt_addr_valid|vfs_|rw_verify|kmem|slab|kfree|kmalloc|page_frag',s)),
 ('kernel: scheduling, context switches, syscall entry, futex, epoll', lambda d,s: d==K and re.search(r'sched|task|switch|futex|syscall|irqentry|entry_|wake|epoll|ep_|hrtimer|pick_|update_|enqueue|dequeue|rcu|fdget|fput|__fget|do_|select|ktime|tick|clock|_raw_spin|read_tsc|mt_find|lock',s)),
 ('kernel: other (page tables: the pool reset with PAGEMAP_SCAN, ...)', lambda d,s: d==K),
 ('policy decision: wasmtime and the compiled policy', lambda d,s: re.search(r'wasmtime|cranelift|switchyard_policy|wit_|wasm',s) or d.startswith('[JIT]')),
 ('JSON: request parse and summary, usage parse (serde_json)', lambda d,s: re.search(r'serde|json|summar|estimate|excerpt|memchr',s)),
 ('HTTP: hyper, httparse, http', lambda d,s: re.search(r'hyper|httparse|http::|h2::|HeaderMap|header',s)),
 ('async runtime: tokio, mio', lambda d,s: re.search(r'tokio|mio',s)),
 ('allocation and copies (mimalloc, memcpy/memset)', lambda d,s: re.search(r'mi_|_mi|memmove|memcpy|memset|memcmp|malloc|free|alloc',s)),
 ('metrics, hashing', lambda d,s: re.search(r'sip|hash|prometheus|metrics|Family|Histogram',s)),
 ('gateway code (pipeline, auth, routing, accounting, ...)', lambda d,s: 'switchyard' in s or 'sha2' in s),
 ('other', lambda d,s: True),
]
tot=collections.Counter()
for line in out.splitlines():
    m=re.match(r'\s*([\d.]+)%\s+(\[JIT\] tid \d+|\S+)\s+\[(.)\]\s+(.*)',line)
    if not m: continue
    p=float(m.group(1)); d=m.group(2); s=m.group(4)
    for c,f in cats:
        if f(d,s): tot[c]+=p; break
for c,_ in cats: print(f'{tot[c]:5.1f}%  {c}')
