#!/usr/bin/env bash
# perf/ktls-vm.sh: prove ringmq's kTLS path on a kernel that has kTLS, in a throw-away VM.
#
# The development hosts' kernels have no CONFIG_TLS, so `ktls = true` falls back to rustls there
# (tests/broker/t11_tls.rs checks that). This boots Debian bookworm's kernel (net/tls/tls.ko as
# a module) under qemu/KVM with a small initramfs: busybox, the release ringmq, Mosquitto's
# command-line clients (OpenSSL), ringmq-bench, the tls and crypto modules. Inside, ringmq runs
# a `ktls = true` mqtts listener and MQTT publish/subscribe runs over TLS 1.3 and TLS 1.2 with
# every suite the kernel takes (AES-128-GCM, AES-256-GCM, ChaCha20-Poly1305); the broker's log
# and /proc/net/tls_stat (TlsTxSw/TlsRxSw, TlsCurrTxSw/TlsCurrRxSw) must show kTLS engaged.
# Then a rough throughput comparison, rustls vs kTLS listener, same VM, same client (numbers in
# a VM are indicative only), and the VM powers off.
#
#   perf/ktls-vm.sh                 # everything; prints KTLS-VM: PASS or FAIL, exit status 0/1
#   perf/ktls-vm.sh --no-bench      # the functional proof only
#   BENCH_SECONDS=10 perf/ktls-vm.sh
#
# Needs root for apt-get (qemu-system-x86, busybox-static, kmod, mosquitto-clients, openssl)
# and /dev/kvm; downloads one linux-image .deb (~70 MB, kept in target/ktls-vm/). Not part of
# the CI suite for that reason. Network: none in the VM but its own loopback.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${KTLS_VM_DIR:-$ROOT/target/ktls-vm}
BENCH=1
BENCH_SECONDS=${BENCH_SECONDS:-5}
for a in "$@"; do
    case $a in
    --no-bench) BENCH=0 ;;
    -h | --help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "unknown argument $a" >&2; exit 2 ;;
    esac
done
mkdir -p "$WORK"
cd "$WORK"

log() { echo "ktls-vm: $*" >&2; }

# --- host packages -----------------------------------------------------------------------------
missing=()
command -v qemu-system-x86_64 >/dev/null || missing+=(qemu-system-x86)
[ -x /bin/busybox ] || missing+=(busybox-static)
command -v depmod >/dev/null || [ -x /usr/sbin/depmod ] || [ -x /sbin/depmod ] || missing+=(kmod)
command -v mosquitto_pub >/dev/null || missing+=(mosquitto-clients)
command -v openssl >/dev/null || missing+=(openssl)
if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2
fi
PATH=$PATH:/usr/sbin:/sbin
[ -w /dev/kvm ] || { log "/dev/kvm is not usable"; exit 1; }

# --- the kernel --------------------------------------------------------------------------------
# The newest bookworm 6.1 kernel apt knows (or KTLS_VM_KERNEL=linux-image-6.1.0-NN-amd64).
PKG=${KTLS_VM_KERNEL:-$(apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-amd64$' |
    awk '{print $1}' | sort -V | tail -1)}
[ -n "$PKG" ] || { log "no linux-image-6.1.0-*-amd64 package known to apt (apt-get update?)"; exit 1; }
if [ ! -d "kernel-$PKG" ]; then
    rm -f "$PKG"_*.deb
    apt-get download "$PKG" >&2
    dpkg-deb -x "$PKG"_*.deb "kernel-$PKG.tmp"
    mv "kernel-$PKG.tmp" "kernel-$PKG"
fi
KVER=${PKG#linux-image-}
KDIR=$WORK/kernel-$PKG
VMLINUZ=$KDIR/boot/vmlinuz-$KVER
grep -q '^CONFIG_TLS=[ym]' "$KDIR/boot/config-$KVER" || { log "$PKG has no CONFIG_TLS"; exit 1; }

# --- our binaries ------------------------------------------------------------------------------
log "building release binaries"
(cd "$ROOT" && cargo build -j1 --release -p ringmq --bin ringmq >&2)
[ $BENCH = 1 ] && (cd "$ROOT" && cargo build -j1 --release -p ringmq-bench >&2)
BIN=$ROOT/target/release

# --- certificates: an ECDSA CA and a server certificate for 127.0.0.1 -------------------------
if [ ! -f pki/server.pem ]; then
    mkdir -p pki
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
        -subj "/CN=ringmq kTLS VM CA" -keyout pki/ca.key -out pki/ca.pem 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=127.0.0.1" \
        -keyout pki/server.key -out pki/server.csr 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >pki/ext
    openssl x509 -req -in pki/server.csr -CA pki/ca.pem -CAkey pki/ca.key -CAcreateserial \
        -days 3650 -extfile pki/ext -out pki/server.pem 2>/dev/null
fi

# --- the initramfs -----------------------------------------------------------------------------
log "building the initramfs"
R=$WORK/root
rm -rf "$R"
mkdir -p "$R"/{bin,sbin,etc/ringmq,proc,sys,dev,tmp,run,lib/modules}
cp /bin/busybox "$R/bin/"
for app in $(/bin/busybox --list); do
    [ "$app" = busybox ] || ln -sf busybox "$R/bin/$app"
done

# A binary and every shared library ldd names, at the same paths.
copy_with_libs() {
    local f=$1 dest=$2
    cp -L "$f" "$R$dest"
    ldd "$f" | grep -o '/[^ ]*' | while read -r lib; do
        mkdir -p "$R$(dirname "$lib")"
        cp -Ln "$lib" "$R$lib" 2>/dev/null || true
    done
}
copy_with_libs "$BIN/ringmq" /bin/ringmq
[ $BENCH = 1 ] && copy_with_libs "$BIN/ringmq-bench" /bin/ringmq-bench
for t in mosquitto_pub mosquitto_sub openssl; do copy_with_libs "$(command -v $t)" /bin/$t; done
# kmod's modprobe, so the kernel's own module requests (crypto-gcm(aes), ...) work too.
rm -f "$R/sbin/modprobe" "$R/bin/modprobe"
copy_with_libs "$(readlink -f "$(command -v kmod || echo /bin/kmod)")" /bin/kmod
ln -s ../bin/kmod "$R/sbin/modprobe"
# OpenSSL configurations choosing the version and suite: Mosquitto 2.0's clients have no
# option for TLS 1.3 suites, and their --tls-version tlsv1.2 is a minimum (TLS 1.3 still wins).
for s in TLS_AES_128_GCM_SHA256 TLS_AES_256_GCM_SHA384 TLS_CHACHA20_POLY1305_SHA256; do
    printf 'openssl_conf = conf\n[conf]\nssl_conf = ssl\n[ssl]\nsystem_default = tls\n[tls]\nMinProtocol = TLSv1.3\nCiphersuites = %s\n' \
        "$s" >"$R/etc/openssl-$s.cnf"
done
for s in ECDHE-ECDSA-AES128-GCM-SHA256 ECDHE-ECDSA-AES256-GCM-SHA384 ECDHE-ECDSA-CHACHA20-POLY1305; do
    printf 'openssl_conf = conf\n[conf]\nssl_conf = ssl\n[ssl]\nsystem_default = tls\n[tls]\nMaxProtocol = TLSv1.2\nCipherString = %s\n' \
        "$s" >"$R/etc/openssl-$s.cnf"
done
cp pki/ca.pem pki/server.pem pki/server.key "$R/etc/ringmq/"

# Only the modules kTLS needs: net/tls and the crypto ones, with a depmod of that subset.
M=$R/lib/modules/$KVER
mkdir -p "$M/kernel"
for d in net/tls crypto arch/x86/crypto lib/crypto; do
    mkdir -p "$M/kernel/$d"
    cp -r "$KDIR/lib/modules/$KVER/kernel/$d/." "$M/kernel/$d/"
done
cp "$KDIR/lib/modules/$KVER"/modules.{builtin,builtin.modinfo,order} "$M/"
depmod -b "$R" "$KVER"

cat >"$R/etc/ringmq/ringmq.toml" <<'EOF'
durability = "none"          # the VM's root is a RAM file system (no O_DIRECT)
allow_anonymous = true

[http]
enabled = false

[[listener]]
bind = "127.0.0.1:8883"
protocol = "mqtts"
certfile = "/etc/ringmq/server.pem"
keyfile = "/etc/ringmq/server.key"
ktls = true

[[listener]]
bind = "127.0.0.1:8884"
protocol = "mqtts"
certfile = "/etc/ringmq/server.pem"
keyfile = "/etc/ringmq/server.key"
EOF

cat >"$R/init" <<EOF
#!/bin/sh
BENCH=$BENCH
BENCH_SECONDS=$BENCH_SECONDS
EOF
cat >>"$R/init" <<'EOF'
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t tmpfs tmpfs /tmp
ip link set lo up
ulimit -l unlimited # glommio's io_uring rings are locked memory
ulimit -n 65536
ok=1
fail() { echo "KTLS-VM: check failed: $*"; ok=0; }
finish() {
    [ -n "$BROKER" ] && kill "$BROKER" 2>/dev/null
    if [ $ok = 1 ]; then echo "KTLS-VM: PASS"; else echo "KTLS-VM: FAIL"; fi
    poweroff -f
}
stat() { awk -v k="$1" '$1 == k { print $2 }' /proc/net/tls_stat; }
CA=/etc/ringmq/ca.pem
BROKER=

echo "kernel $(uname -r), $(nproc) CPUs"
modprobe tls || { fail "modprobe tls"; finish; }
for m in gcm ghash_clmulni_intel aesni_intel chacha20poly1305 chacha_x86_64 poly1305_x86_64; do
    modprobe $m 2>/dev/null || echo "(module $m not loaded)"
done

start_broker() {
    $ON_CPU ringmq --config /etc/ringmq/ringmq.toml --log-level debug "$@" 2>>/tmp/broker.log &
    BROKER=$!
    i=0
    until mosquitto_pub -h 127.0.0.1 -p 8884 --cafile $CA -t up -m x -q 0 2>/dev/null; do
        i=$((i + 1)); [ $i -gt 50 ] && { fail "broker did not start"; cat /tmp/broker.log; finish; }
        sleep 0.2
    done
}
ON_CPU=
start_broker --shards 2 --pin false

# One exchange per suite: a subscriber and three publishers with the same TLS settings (so
# the broker both receives and sends with kTLS), the third message 100 kB (many records).
head -c 100000 /dev/zero | tr '\0' x >/tmp/big
for case in \
    "tls13-aes256|TLS_AES_256_GCM_SHA384|TLSv1_3 AES-256-GCM" \
    "tls13-aes128|TLS_AES_128_GCM_SHA256|TLSv1_3 AES-128-GCM" \
    "tls13-chacha|TLS_CHACHA20_POLY1305_SHA256|TLSv1_3 ChaCha20-Poly1305" \
    "tls12-aes128|ECDHE-ECDSA-AES128-GCM-SHA256|TLSv1_2 AES-128-GCM" \
    "tls12-aes256|ECDHE-ECDSA-AES256-GCM-SHA384|TLSv1_2 AES-256-GCM" \
    "tls12-chacha|ECDHE-ECDSA-CHACHA20-POLY1305|TLSv1_2 ChaCha20-Poly1305"; do
    name=${case%%|*}; rest=${case#*|}
    suite=${rest%%|*}; want=${rest#*|}
    conf=/etc/openssl-$suite.cnf
    flags=
    before=$(grep -c "kTLS on 127.0.0.1:8883: $want " /tmp/broker.log)
    OPENSSL_CONF=$conf mosquitto_sub -h 127.0.0.1 -p 8883 --cafile $CA $flags -i "sub-$name" \
        -t "ktls/$name" -q 1 -C 3 -W 15 >/tmp/sub.out &
    sub=$!
    # The subscriber's connection is a kTLS socket in both directions once it has subscribed.
    for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
        cur_tx=$(stat TlsCurrTxSw); cur_rx=$(stat TlsCurrRxSw)
        [ "$cur_tx" -ge 1 ] && [ "$cur_rx" -ge 1 ] && break
        sleep 0.25
    done
    sleep 0.3
    for i in 1 2; do
        OPENSSL_CONF=$conf mosquitto_pub -h 127.0.0.1 -p 8883 --cafile $CA $flags -i "pub-$name-$i" \
            -t "ktls/$name" -q 1 -m "$name-$i" || fail "$name: publish $i"
    done
    OPENSSL_CONF=$conf mosquitto_pub -h 127.0.0.1 -p 8883 --cafile $CA $flags -i "pub-$name-3" \
        -t "ktls/$name" -q 1 -f /tmp/big || fail "$name: publish 3 (100 kB)"
    wait $sub || fail "$name: subscriber exit status"
    { echo "$name-1"; echo "$name-2"; cat /tmp/big; echo; } >/tmp/expected
    cmp -s /tmp/sub.out /tmp/expected || fail "$name: subscriber got $(wc -c </tmp/sub.out) bytes, not the 3 messages"
    engaged=$(($(grep -c "kTLS on 127.0.0.1:8883: $want " /tmp/broker.log) - before))
    # The subscriber and three publishers: four connections over kTLS with this suite.
    [ "$engaged" -ge 4 ] || fail "$name: kTLS engaged on $engaged connections, not 4 ($want)"
    [ "${cur_tx:-0}" -ge 1 ] && [ "${cur_rx:-0}" -ge 1 ] || fail "$name: TlsCurrTxSw=$cur_tx TlsCurrRxSw=$cur_rx with the subscriber connected"
    echo "case $name: $want on $engaged connections, TlsCurrTxSw=$cur_tx TlsCurrRxSw=$cur_rx with the subscriber connected, 3 messages (last 100 kB) delivered"
done

# Records that are not application data. Mosquitto's clients end with close_notify after
# DISCONNECT: end of stream. A TLS 1.3 KeyUpdate (s_client's "K" command: with an update
# request) is not followed on kTLS: that connection is closed, and the broker serves on.
grep -q "kTLS record from the peer: Alert(1, 0)" /tmp/broker.log &&
    echo "close_notify from clients read as end of stream" ||
    echo "(no close_notify seen before the close: clients closed first)"
(sleep 1; printf 'K\n'; sleep 2) | openssl s_client -connect 127.0.0.1:8883 -CAfile $CA \
    -tls1_3 >/dev/null 2>&1
grep -q "kTLS record from the peer: Other(22)" /tmp/broker.log ||
    fail "a KeyUpdate did not reach the broker as a handshake record"
mosquitto_pub -h 127.0.0.1 -p 8883 --cafile $CA -t after/keyupdate -m x -q 1 ||
    fail "not serving after a client's KeyUpdate"
echo "KeyUpdate from a client: that connection closed, the broker serves on"

echo "--- connections the broker put on kTLS, by version and suite"
grep -o "kTLS on 127.0.0.1:8883: .*" /tmp/broker.log | sort | uniq -c
echo "--- /proc/net/tls_stat"
cat /proc/net/tls_stat
[ "$(stat TlsTxSw)" -ge 24 ] || fail "TlsTxSw $(stat TlsTxSw) < 24"
[ "$(stat TlsRxSw)" -ge 24 ] || fail "TlsRxSw $(stat TlsRxSw) < 24"
[ "$(stat TlsDecryptError)" = 0 ] || fail "TlsDecryptError $(stat TlsDecryptError)"
grep -q "kTLS on 127.0.0.1:8883 is off" /tmp/broker.log && fail "the broker fell back to rustls"
grep -q "kTLS on 127.0.0.1:8884" /tmp/broker.log && fail "kTLS on the listener without ktls"
grep -E "WARN|ERROR|panicked" /tmp/broker.log | grep -v "memlock\|open files\|somaxconn" | head
grep -q panicked /tmp/broker.log && fail "the broker panicked"
kill $BROKER; wait $BROKER 2>/dev/null; BROKER=

if [ "$BENCH" = 1 ]; then
    # One shard on CPU 0, the load on CPU 1: rustls (8884) and kTLS (8883) listeners of the
    # same broker, alternating, the same client (ringmq-bench: rustls on its side both times).
    echo "--- throughput, in a VM: indicative only"
    ON_CPU="taskset 1"
    start_broker --shards 1 --pin false
    for round in 1 2; do
        for port in 8884 8883; do
            what=rustls; [ $port = 8883 ] && what=kTLS
            for size in 64 16384; do
                out=$(taskset 2 ringmq-bench pairs --pairs 4 -q 0 -s $size -d ${BENCH_SECONDS}s -w 1s \
                    -p $port --tls-ca $CA --broker-pid $BROKER 2>&1)
                echo "bench round $round $what payload $size B: $(echo "$out" | grep -E 'sent .* msg/s' | head -1)"
                echo "$out" | grep -iE 'broker.*cpu|cpu.*broker' | head -1 | sed 's/^/    /'
            done
        done
    done
fi
finish
EOF
chmod +x "$R/init"
(cd "$R" && find . | /bin/busybox cpio -o -H newc 2>/dev/null | gzip -1) >initramfs.gz
log "initramfs $(du -h initramfs.gz | cut -f1)"

# --- boot --------------------------------------------------------------------------------------
# KVM first. Nested under some hypervisors (this project's Firecracker hosts) a KVM guest hangs
# right after the kernel is decompressed: without a line from our init within 60 s, the same VM
# runs again under TCG (emulated: a few times slower, and throughput even less telling).
# KTLS_VM_ACCEL=kvm|tcg forces one.
boot() {
    local accel=$1 cpu=host
    [ "$accel" = tcg ] && cpu=max
    log "booting $PKG with $accel (console in $WORK/console.log)"
    : >console.log
    timeout 1200 qemu-system-x86_64 -accel "$accel" -cpu "$cpu" -smp 2 -m 1024 -nographic \
        -no-reboot -kernel "$VMLINUZ" -initrd initramfs.gz \
        -append "console=ttyS0 panic=-1 quiet loglevel=3" </dev/null >console.log 2>&1 &
    local qemu=$! waited=0
    tail -f console.log --pid=$qemu >&2 &
    while kill -0 $qemu 2>/dev/null; do
        if [ -z "${KTLS_VM_ACCEL:-}" ] && [ "$accel" = kvm ] && [ $waited -ge 60 ] &&
            ! grep -q '^kernel 6' console.log; then
            log "no sign of life under KVM after 60 s; trying TCG"
            kill $qemu
            wait $qemu 2>/dev/null || true
            return 1
        fi
        sleep 1
        waited=$((waited + 1))
    done
    wait $qemu 2>/dev/null || true
    # KVM that failed to start (qemu aborts on some nested hosts) counts as no sign of life.
    [ "$accel" = tcg ] || grep -q '^kernel 6' console.log
}
case ${KTLS_VM_ACCEL:-auto} in
tcg) boot tcg ;;
kvm) boot kvm ;;
*) boot kvm || boot tcg ;;
esac
sleep 1
grep -q '^KTLS-VM: PASS' console.log
