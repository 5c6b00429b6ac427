#!/usr/bin/env bash
# Print the settings tuning/ recommends next to the values in force on this machine. Read-only:
# it changes nothing. Usage: tuning/check.sh [PID]   (PID: also show that process's limits)
set -uo pipefail
conf="$(dirname "$0")/99-ringmq.conf"
printf '%-36s %-24s %s\n' "sysctl" "recommended" "current"
grep -E '^[a-z]' "$conf" | while IFS='=' read -r key val; do
    key=$(echo "$key" | xargs); val=$(echo "$val" | xargs)
    cur=$(sysctl -n "$key" 2>/dev/null | tr '\t' ' ' | xargs || true)
    [[ -n $cur ]] || cur="(not available)"
    mark=""; [[ "$cur" == "$val" ]] || mark="  <-"
    printf '%-36s %-24s %s%s\n' "$key" "$val" "$cur" "$mark"
done
echo
echo "this shell: nofile $(ulimit -Sn)/$(ulimit -Hn), memlock $(ulimit -Sl)/$(ulimit -Hl) KiB"
if [[ $# -ge 1 ]]; then
    echo "process $1:"; grep -E 'open files|locked memory' "/proc/$1/limits"
fi
echo
govs=$(cat /sys/devices/system/cpu/cpu[0-9]*/cpufreq/scaling_governor 2>/dev/null | sort | uniq -c | xargs)
echo "CPU frequency governor: ${govs:-not exposed (VM or no cpufreq driver)}"
if [[ -r /sys/devices/system/cpu/smt/active ]]; then echo "SMT active: $(cat /sys/devices/system/cpu/smt/active)"; fi
if [[ -r /sys/kernel/mm/transparent_hugepage/enabled ]]; then echo "THP: $(cat /sys/kernel/mm/transparent_hugepage/enabled)"; fi
if pgrep -x irqbalance >/dev/null; then echo "irqbalance: running"; else echo "irqbalance: not running"; fi
grep -E '^cpu[0-9]' /proc/stat | awk '{print $1": steal ticks since boot "$9}'
