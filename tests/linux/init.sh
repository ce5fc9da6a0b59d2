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

if grep -q linuxtest=shell /proc/cmdline; then
    say "starting a shell (poweroff -f to leave)"
    exec setsid cttyhack sh
fi
poweroff -f
