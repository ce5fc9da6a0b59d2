#!/bin/busybox sh
# /init of the test initramfs: busybox-static only.
#
# Prints what Linux sees (CPUs online, the cpuidle driver and states), then
# exercises CPU hotplug through sysfs and lets the cores idle, and reports
# every check as `linux-init: PASS ...` or `linux-init: FAIL ...`. Then it
# powers off (`poweroff -f`: PSCI SYSTEM_OFF), or with `linuxtest=shell` on
# the kernel command line, starts an interactive shell on the console.
/bin/busybox mkdir -p /sbin /usr/bin /usr/sbin /proc /sys /dev /tmp
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null

say() { echo "linux-init: $*"; }
check() { # check <description> <command...>
    d=$1; shift
    if "$@"; then say "PASS $d"; else say "FAIL $d"; fi
}
cpus=/sys/devices/system/cpu

say "reached /init at uptime $(cut -d' ' -f1 /proc/uptime) s, kernel $(uname -r)"
say "nproc=$(nproc) processors=$(grep -c ^processor /proc/cpuinfo) online=$(cat $cpus/online) possible=$(cat $cpus/possible)"
expect=$(sed -n 's/.*linuxtest.cpus=\([0-9]*\).*/\1/p' /proc/cmdline)
[ -n "$expect" ] && check "all $expect CPUs online" [ "$(nproc)" = "$expect" ]

idle_report() {
    say "cpuidle driver=$(cat $cpus/cpuidle/current_driver 2>/dev/null || echo none) governor=$(cat $cpus/cpuidle/current_governor_ro 2>/dev/null || cat $cpus/cpuidle/current_governor 2>/dev/null || echo none)"
    for c in $cpus/cpu[0-9]*; do
        for s in $c/cpuidle/state*; do
            [ -d "$s" ] || continue
            say "$(basename $c) $(basename $s) $(cat $s/name) usage=$(cat $s/usage) rejected=$(cat $s/rejected 2>/dev/null) time_us=$(cat $s/time)"
        done
    done
}
idle_report

# CPU hotplug: every secondary core off and on again.
for c in $cpus/cpu[1-9]*; do
    n=${c##*/cpu}
    [ -f $c/online ] || continue
    echo 0 > $c/online; r=$(cat $c/online)
    check "cpu$n offline (online=$r, online cpus $(cat $cpus/online))" [ "$r" = 0 ]
    echo 1 > $c/online; r=$(cat $c/online)
    check "cpu$n online again (online=$r, online cpus $(cat $cpus/online))" [ "$r" = 1 ]
done
check "nproc back to $(grep -c ^processor /proc/cpuinfo) after hotplug" [ "$(nproc)" = "$(grep -c ^processor /proc/cpuinfo)" ]

# Let the cores idle, then see whether the idle state was used.
sleep 2
idle_report
total=0
for u in $cpus/cpu*/cpuidle/state1/usage; do [ -f "$u" ] && total=$((total + $(cat $u))); done
[ -d $cpus/cpu0/cpuidle/state1 ] && check "PSCI idle state entered ($total times in all)" [ "$total" -gt 0 ]
say "interrupts:"; grep -E 'IPI|arch_timer|CPU' /proc/interrupts | head -12
say "done at uptime $(cut -d' ' -f1 /proc/uptime) s"

# The tracemgr module (with linuxtest.tracemgr on the command line): load it,
# then on every online CPU enable, reconfigure and disable trace through
# /sys/kernel/tracemgr/cpuN, checking after each step that TRACE_STATUS's
# mode and hardware agree; then the hypervisor's errors as errnos (an invalid
# config, an offline core), the counters, and rmmod.
tm=/sys/kernel/tracemgr
tm_field() { sed -n "s/.*$1=\([^ ]*\).*/\1/p" $2; }
tm_state() { # tm_state <cpu> <mode expected>: mode/hw agree and mode is as expected
    st=$(cat $tm/cpu$1/status 2>&1); m=$(echo "$st" | tm_field mode); h=$(echo "$st" | tm_field hw)
    case "$m/$h" in enabled/tracing|disabled/stopped) ok=1 ;; *) ok=0 ;; esac
    check "cpu$1 $3: $st" [ "$ok" = 1 -a "$m" = "$2" ]
}
tracemgr_test() {
    [ -f /lib/modules/tracemgr.ko ] || { say "FAIL tracemgr.ko not in the initramfs"; return; }
    insmod /lib/modules/tracemgr.ko; r=$?
    dmesg | grep -i tracemgr | while read -r l; do say "dmesg: $l"; done
    check "insmod tracemgr.ko (status $r)" [ "$r" = 0 -a -d $tm ]
    [ -d $tm ] || return
    say "tracemgr abi_version=$(cat $tm/abi_version)"
    for c in $tm/cpu[0-9]*; do
        n=${c##*/cpu}
        [ "$n" = 0 ] || [ "$(cat $cpus/cpu$n/online)" = 1 ] || continue
        tm_state $n disabled "before enable (mpidr $(cat $c/mpidr))"
        g0=$(cat $c/status | tm_field gen)
        echo 1 > $c/enable; check "cpu$n enable (write status $?, enable reads $(cat $c/enable))" [ "$(cat $c/enable)" = 1 ]
        tm_state $n enabled "after enable"
        echo 0x2f 0x1000 0x2000 > $c/config; r=$?
        check "cpu$n reconfigure while enabled (status $r, config $(cat $c/config))" [ "$r" = 0 ]
        tm_state $n enabled "after reconfigure"
        st=$(cat $c/status)
        check "cpu$n reconfigured: config=0x2f filter=0x1000-0x2000" [ "$(echo "$st" | tm_field config)" = 0x2f -a "$(echo "$st" | tm_field filter)" = 0x1000-0x2000 ]
        e0=$(cat $tm/errors)
        msg=$( { echo 0x4 > $c/config; } 2>&1 ); r=$?
        check "cpu$n config 0x4 (no EL) refused by the hypervisor (status $r: $msg; errors $e0 -> $(cat $tm/errors))" [ "$r" != 0 -a "$(cat $tm/errors)" = $((e0 + 1)) ]
        tm_state $n enabled "still enabled with the old config $(cat $c/config)"
        echo 0x3 > $c/config
        echo 0 > $c/enable; check "cpu$n disable (write status $?, enable reads $(cat $c/enable))" [ "$(cat $c/enable)" = 0 ]
        tm_state $n disabled "after disable"
        g1=$(cat $c/status | tm_field gen)
        check "cpu$n generation $g0 -> $g1 (enable, 2 reconfigures, disable: +4)" [ "$g1" = $((g0 + 4)) ]
    done
    # An offline core: TRACE_STATUS and TRACE_ENABLE answer TARGET_OFF (-ENODEV).
    if [ -f $cpus/cpu1/online ] && [ -d $tm/cpu1 ]; then
        echo 1 > $tm/cpu1/enable
        echo 0 > $cpus/cpu1/online
        e0=$(cat $tm/errors)
        st=$(cat $tm/cpu1/status 2>&1); r=$?
        check "cpu1 offline: status fails ($st; errors $e0 -> $(cat $tm/errors))" [ "$r" != 0 ]
        e0=$(cat $tm/errors)
        msg=$( { echo 1 > $tm/cpu1/enable; } 2>&1 ); r=$?
        check "cpu1 offline: enable fails (status $r: $msg; errors $e0 -> $(cat $tm/errors))" [ "$r" != 0 ]
        echo 1 > $cpus/cpu1/online
        tm_state 1 disabled "online again: CPU_OFF stopped trace, CPU_ON starts Disabled"
    fi
    say "tracemgr counters: requests=$(cat $tm/requests) errors=$(cat $tm/errors)"
    rmmod tracemgr; r=$?
    check "rmmod tracemgr (status $r)" [ "$r" = 0 -a ! -d $tm ]
}
grep -q linuxtest.tracemgr /proc/cmdline && tracemgr_test

if grep -q linuxtest=shell /proc/cmdline; then
    say "starting a shell (poweroff -f to leave)"
    exec setsid cttyhack sh
fi
poweroff -f
