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
    # No trace hardware of its own: TraceVer [7:4], TraceFilt [43:40] and
    # TraceBuffer [47:44] of ID_AA64DFR0_EL1 read 0 (the kernel's own
    # CoreSight/TRBE drivers would find nothing to drive).
    dfr0=$(cat $tm/id_aa64dfr0)
    check "ID_AA64DFR0_EL1 $dfr0 shows no trace unit, filter or buffer" [ $(( dfr0 & 0xff00000000f0 )) = 0 ]
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
    # Trace data: cpu1 (cpu0 on one core) traces EL0|EL1 with timestamps
    # and context IDs while it idles for a second (its CPU_SUSPENDs and
    # interrupts trap to EL2, and the QEMU model traces each), then the
    # data is read back through cpuN/data (TRACE_READ) and printed as hex
    # for the runner, which decodes it with OpenCSD.
    d=1; [ -d $tm/cpu1 ] && [ "$(cat $cpus/cpu1/online)" = 1 ] || d=0
    echo 0x17 > $tm/cpu$d/config && echo 1 > $tm/cpu$d/enable
    sleep 1
    echo 0 > $tm/cpu$d/enable; echo 0x3 > $tm/cpu$d/config
    st=$(cat $tm/cpu$d/stats); avail=$(echo "$st" | tm_field available)
    say "tracedata cpu$d stats $st"
    n=$(od -An -v -tx1 $tm/cpu$d/data | while read -r l; do say "tracedata cpu$d $l"; done | tee /dev/console | wc -l)
    check "cpu$d trace data read back: $avail bytes in $n lines of 16" [ "$avail" -gt 0 -a "$n" = $(( (avail + 15) / 16 )) ]

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

# The concurrent run (linuxtest.cycles=C linuxtest.rounds=R): pinned to CPU0,
# a background loop takes every other CPU offline and back C times while the
# foreground enables and disables trace on every CPU (with a reconfigure in
# between), reading TRACE_STATUS after every step, until the hotplug loop is
# done and at least R rounds ran. The other CPUs idle (CPU_SUSPEND) whenever
# they are online and not serving a request. An operation on an offline CPU
# fails with ENODEV (TARGET_OFF): counted, not an error. A status whose mode
# and hardware disagree is a violation; so is any other failure.
idle_total() {
    t=0
    for u in $cpus/cpu*/cpuidle/state1/usage; do [ -f "$u" ] && { read v < $u; t=$((t + v)); }; done
    echo $t
}
stress_test() {
    cycles=$1; rounds=$2
    taskset -p 1 $$ >/dev/null || { say "FAIL taskset to CPU0"; return; }
    ncpu=$(grep -c ^processor /proc/cpuinfo)
    insmod /lib/modules/tracemgr.ko || { say "FAIL insmod for the concurrent run"; return; }
    idle0=$(idle_total); req0=$(cat $tm/requests); t0=$(cut -d' ' -f1 /proc/uptime)
    (
        fails=0
        i=0
        while [ $i -lt $cycles ]; do
            c=1
            while [ $c -lt $ncpu ]; do
                echo 0 > $cpus/cpu$c/online || fails=$((fails + 1))
                echo 1 > $cpus/cpu$c/online || fails=$((fails + 1))
                c=$((c + 1))
            done
            i=$((i + 1))
        done
        echo "$((cycles * (ncpu - 1))) $fails" > /tmp/hotplug.done
    ) &
    hp=$!
    ops=0; checks=0; off=0; bad=0; violations=0; round=0
    verify() { # verify <cpu> <what was done>: TRACE_STATUS's mode == hardware
        if ! read st < $tm/cpu$1/status 2>/dev/null; then
            # Offline (ENODEV), or back online by now: ask again to learn which.
            st=$(cat $tm/cpu$1/status 2>&1) || {
                case "$st" in
                    *"No such device"*) off=$((off + 1)); return ;;
                    *) bad=$((bad + 1)); say "status of cpu$1 after $2 failed: $st"; return ;;
                esac
            }
        fi
        checks=$((checks + 1))
        case "$st" in
            "mode=enabled hw=tracing powered=1 "*|"mode=disabled hw=stopped powered=1 "*) ;;
            *) violations=$((violations + 1)); say "violation on cpu$1 after $2: $st" ;;
        esac
    }
    step() { # step <cpu> <file> <value>: one write, then TRACE_STATUS
        ops=$((ops + 1))
        if ! echo $3 > $tm/cpu$1/$2 2>/tmp/err; then
            read e < /tmp/err
            case "$e" in
                *"No such device"*) off=$((off + 1)) ;;
                *) bad=$((bad + 1)); say "cpu$1 $2=$3 failed: $e" ;;
            esac
        fi
        verify $1 "$2=$3"
    }
    while [ $round -lt $rounds ] || kill -0 $hp 2>/dev/null; do
        c=0
        while [ $c -lt $ncpu ]; do
            step $c enable 1
            [ $((round % 4)) = 1 ] && step $c config "0x2f 0x1000 0x2000"
            [ $((round % 4)) = 3 ] && step $c config 0x3
            step $c enable 0
            c=$((c + 1))
        done
        round=$((round + 1))
    done
    wait $hp
    read hotplugs hpfails < /tmp/hotplug.done
    t1=$(cut -d' ' -f1 /proc/uptime); idle1=$(idle_total); req1=$(cat $tm/requests)
    say "concurrent run: rounds=$round trace_ops=$ops status_checks=$checks target_off=$off other_errors=$bad violations=$violations hotplug_cycles=$hotplugs hotplug_failures=$hpfails idle_entries=$((idle1 - idle0)) hvc_requests=$((req1 - req0)) uptime=$t0..$t1"
    check "concurrent run: mode == hardware in all $checks status reads ($violations violations)" [ "$violations" = 0 -a "$checks" -gt 0 ]
    check "concurrent run: no error other than ENODEV ($bad)" [ "$bad" = 0 ]
    check "concurrent run: $hotplugs hotplug cycles, $hpfails failures" [ "$hotplugs" = $((cycles * (ncpu - 1))) -a "$hpfails" = 0 ]
    check "concurrent run: CPUs idled through CPU_SUSPEND ($((idle1 - idle0)) entries)" [ $((idle1 - idle0)) -gt 0 ]
    check "concurrent run: $round rounds (at least $rounds)" [ "$round" -ge "$rounds" ]
    check "concurrent run: every CPU online at the end ($(cat $cpus/online))" [ "$(cat $cpus/online)" = "0-$((ncpu - 1))" ]
    rmmod tracemgr
}

# Debian's perf in the guest (linuxtest.perfcheck): the CoreSight core
# module (modprobe, from the modules.dep fetch.sh wrote), its cs_etm PMU,
# perf --version and perf list, then perf stat and perf record with a
# software clock on /bin/workload, whose hot_loop perf report must name as
# the hottest symbol of its user time. linuxtest.perfiters=N sets the
# workload's iterations for the sampled runs (default 50000000: about 300
# million instructions, a fraction of a second under TCG, some hundreds of
# samples at perf's default rate). perf's own WARNING lines are
# printed as "perf-warning:", so that they are not taken for the kernel's.
perf_out() { # perf_out <file> <what>: the file's lines as linux-init lines
    grep . "$1" | sed 's/WARNING:/perf-warning:/' | while read -r l; do say "$2: $l"; done
}
perf_test() {
    export PATH=/usr/bin:/bin:/usr/sbin:/sbin HOME=/tmp
    mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
    mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
    es=/sys/bus/event_source/devices
    iters=$(sed -n 's/.*linuxtest.perfiters=\([0-9]*\).*/\1/p' /proc/cmdline)
    iters=${iters:-50000000}
    say "perf: event sources before modprobe: $(ls $es | tr '\n' ' ')"
    modprobe coresight; r=$?
    check "modprobe coresight (status $r; loaded: $(cut -d' ' -f1 /proc/modules | tr '\n' ' '))" [ "$r" = 0 ]
    say "perf: event sources: $(ls $es | tr '\n' ' ')"
    check "cs_etm PMU registered (type $(cat $es/cs_etm/type 2>/dev/null), format: $(ls $es/cs_etm/format 2>/dev/null | tr '\n' ' '))" [ -d $es/cs_etm ]
    v=$(perf --version 2>&1); r=$?
    check "perf --version (status $r): $v" [ "$r" = 0 ]
    perf list > /tmp/perf-list 2>&1; r=$?
    say "perf list: status $r, $(wc -l < /tmp/perf-list) lines"
    grep -E 'cs_etm|Kernel PMU' /tmp/perf-list > /tmp/perf-list-pmu
    perf_out /tmp/perf-list-pmu "perf list"
    check "perf list shows cs_etm//" grep -q 'cs_etm//' /tmp/perf-list
    cd /tmp
    /bin/workload > /tmp/wl 2>&1; r=$?
    perf_out /tmp/wl "workload (default size)"
    check "workload with its default size (status $r)" [ "$r" = 0 ]
    perf stat -e task-clock /bin/workload "$iters" > /tmp/stat 2>&1; r=$?
    perf_out /tmp/stat "perf stat"
    grep -q task-clock /tmp/stat; g=$?
    check "perf stat -e task-clock workload $iters (status $r)" [ "$r" = 0 -a "$g" = 0 ]
    perf record -e cpu-clock -o /tmp/perf.data /bin/workload "$iters" > /tmp/rec 2>&1; r=$?
    perf_out /tmp/rec "perf record"
    check "perf record -e cpu-clock workload $iters (status $r)" [ "$r" = 0 -a -s /tmp/perf.data ]
    # All samples (the kernel's share is exec, page faults and perf's own
    # work), then the workload's user time alone, where hot_loop must
    # be the hottest symbol with over 90%.
    perf report -i /tmp/perf.data --stdio --sort comm,dso,sym > /tmp/rep 2>&1; r=$?
    grep -v '^#' /tmp/rep | grep . | head -6 > /tmp/rep-top
    perf_out /tmp/rep-top "perf report"
    perf report -i /tmp/perf.data --stdio --dsos workload --percentage relative --sort sym > /tmp/rep 2>&1; r2=$?
    grep -v '^#' /tmp/rep | grep . | head -4 > /tmp/rep-top
    perf_out /tmp/rep-top "perf report --dsos workload"
    top=$(head -1 /tmp/rep-top)
    pct=$(echo "$top" | awk '{ sub("%", "", $1); print $1 }')
    hot=0
    case "$top" in *hot_loop*) awk -v p="${pct:-0}" 'BEGIN { exit !(p > 90) }' && hot=1 ;; esac
    check "perf report (status $r, $r2): the hottest symbol of the workload's user time is hot_loop, over 90% ($pct%)" [ "$hot" = 1 ]
    # What perf says of cs_etm itself while no CoreSight source or sink has
    # registered (nothing probes one here): reported, not a check.
    perf record -e cs_etm//u -o /tmp/etm.data /bin/workload > /tmp/etm 2>&1; r=$?
    say "perf record -e cs_etm//u workload: status $r (no trace source or sink registered)"
    head -6 /tmp/etm > /tmp/etm-top
    perf_out /tmp/etm-top "perf record cs_etm"
    cd /
}

grep -q linuxtest.tracemgr /proc/cmdline && tracemgr_test
grep -q linuxtest.perfcheck /proc/cmdline && perf_test
if grep -q linuxtest.csperf /proc/cmdline; then
    . /csperf.sh
    csperf_all
fi
cycles=$(sed -n 's/.*linuxtest.cycles=\([0-9]*\).*/\1/p' /proc/cmdline)
rounds=$(sed -n 's/.*linuxtest.rounds=\([0-9]*\).*/\1/p' /proc/cmdline)
[ -n "$cycles" ] && stress_test "$cycles" "${rounds:-1}"

if grep -q linuxtest=shell /proc/cmdline; then
    say "starting a shell (poweroff -f to leave)"
    exec setsid cttyhack sh
fi
poweroff -f
