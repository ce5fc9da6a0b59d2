# Sourced by the initramfs's /init (tests/linux/init.sh), which defines
# say and check: csperf_test checks tracemgr_cs.ko (guest-api/linux) with
# the kernel's coresight.ko and Debian's perf, and prints every check as
# `linux-init: PASS ...` / `linux-init: FAIL ...`.
#
# Expects in the initramfs: /lib/modules/tracemgr_cs.ko, the kernel's
# configfs.ko and coresight/*.ko under /lib/modules/$(uname -r)/kernel, and
# /usr/bin/perf with its libraries (perf's checks are skipped without it).
#
# What it shows: every online CPU, including one that comes online after
# the module loaded, is a cs_etm source (cs_etm/cpuN, its trcidr/ and mgmt/
# files say ETE with trace ID 0x10 + 2N) with its per-CPU sink; the stock ETE/TRBE drivers bind nothing; perf record -a writes one
# raw-format AUX record per CPU that perf's own decoder reads as ETE
# packets; neither module can be removed while a session holds the path,
# both can afterwards, in either order, with no oops or warning.
csperf_users() { lsmod | sed -n "s/^$1 *[0-9]* *\([0-9]*\).*/\1/p"; }
csperf_oops() { dmesg | grep -cE 'Oops|BUG:|WARNING:|Call trace'; }

csperf_test() {
    km=/lib/modules/$(uname -r)/kernel
    cs=/sys/bus/event_source/devices/cs_etm
    [ -f /lib/modules/tracemgr_cs.ko ] || { say "FAIL tracemgr_cs.ko not in the initramfs"; return; }
    [ -f $km/drivers/hwtracing/coresight/coresight.ko ] || { say "FAIL coresight.ko not in the initramfs"; return; }
    oops0=$(csperf_oops)
    [ -f $km/fs/configfs/configfs.ko ] && insmod $km/fs/configfs/configfs.ko 2>/dev/null
    insmod $km/drivers/hwtracing/coresight/coresight.ko; r=$?
    check "insmod coresight.ko (status $r)" [ "$r" = 0 -a -d $cs ]
    # The last CPU is offline when the module loads and comes online after.
    last=/sys/devices/system/cpu/cpu$(($(ls -d /sys/devices/system/cpu/cpu[0-9]* | wc -l) - 1))
    late=${last##*/cpu}
    echo 0 > $last/online
    insmod /lib/modules/tracemgr_cs.ko; r=$?
    dmesg | grep tracemgr_cs | while read -r l; do say "dmesg: $l"; done
    check "insmod tracemgr_cs.ko with CPU $late offline (status $r)" [ "$r" = 0 ]
    [ "$r" = 0 ] || return
    check "no cs_etm/cpu$late while CPU $late is offline" [ ! -e $cs/cpu$late ]
    echo 1 > $last/online
    check "CPU $late online again ($(cat $last/online)): it gets its source ($(readlink $cs/cpu$late))" \
        [ "$(cat $last/online)" = 1 -a -e $cs/cpu$late ]

    # One source and one sink per online CPU, linked into cs_etm.
    for c in /sys/devices/system/cpu/cpu[0-9]*; do
        n=${c##*/cpu}
        [ "$(cat $c/online 2>/dev/null || echo 1)" = 1 ] || continue
        e=$cs/cpu$n
        check "cs_etm/cpu$n links tracemgr_ete$n ($(readlink $e))" [ "$(basename "$(readlink $e)")" = tracemgr_ete$n ]
        check "cs_etm/sinks/tracemgr_sink$n" [ -e $cs/sinks/tracemgr_sink$n ]
        da=$(cat $e/mgmt/trcdevarch 2>/dev/null || echo 0)
        id=$(cat $e/mgmt/trctraceid 2>/dev/null || echo 0)
        say "cpu$n: trcidr0=$(cat $e/trcidr/trcidr0) trcidr1=$(cat $e/trcidr/trcidr1) trcidr2=$(cat $e/trcidr/trcidr2) trcidr8=$(cat $e/trcidr/trcidr8) trcauthstatus=$(cat $e/mgmt/trcauthstatus) trcdevarch=$da traceid=$id"
        check "cpu$n is an ETE to perf (TRCDEVARCH $da: ARCHVER 5, ARCHPART 0xa13)" \
            [ $(( (da >> 12) & 0xf )) = 5 -a $(( da & 0xfff )) = $((0xa13)) ]
        check "cpu$n trace ID $id is perf's 0x10 + 2 * $n" [ $((id)) = $((0x10 + 2 * n)) ]
    done
    before=$(ls /sys/bus/coresight/devices | wc -l)
    for m in coresight-etm4x coresight-trbe; do
        [ -f $km/drivers/hwtracing/coresight/$m.ko ] && insmod $km/drivers/hwtracing/coresight/$m.ko 2>/dev/null
    done
    check "the stock ETE/TRBE drivers bind nothing ($(ls /sys/bus/coresight/devices | tr '\n' ' '))" \
        [ "$(ls /sys/bus/coresight/devices | wc -l)" = "$before" ]
    rmmod coresight-etm4x 2>/dev/null; rmmod coresight-trbe 2>/dev/null

    if [ -x /usr/bin/perf ]; then
        export HOME=/tmp PERF_PAGER=cat PAGER=cat
        perf record -e cs_etm// -a -o /tmp/csperf.data -- sleep 1 >/tmp/csperf.log 2>&1; r=$?
        check "perf record -e cs_etm// -a (status $r: $(tail -1 /tmp/csperf.log))" [ "$r" = 0 ]
        perf report -i /tmp/csperf.data -D >/tmp/csperf.dump 2>&1
        # Raw format (0x100), whether or not truncated (0x1) as well.
        aux=$(grep -cE 'PERF_RECORD_AUX .*flags: 0x1[0-9a-f][0-9a-f]([^0-9a-f]|$)' /tmp/csperf.dump)
        check "raw-format AUX records from every CPU ($aux)" [ "$aux" -ge "$(nproc)" ]
        check "perf's decoder reads them as ETE ($(grep -c 'I_ASYNC' /tmp/csperf.dump) A-Sync packets)" \
            grep -q 'CoreSight ETE Trace data' /tmp/csperf.dump
        # A session holds both modules.
        perf record -e cs_etm// -a -o /tmp/csperf2.data -- sleep 60 >/tmp/csperf2.log 2>&1 &
        pid=$!
        n=0; while [ "$(csperf_users tracemgr_cs)" = 0 ] && [ $n -lt 120 ]; do sleep 1; n=$((n + 1)); done
        rmmod tracemgr_cs 2>/dev/null; r=$?
        check "rmmod tracemgr_cs refused while perf holds it (status $r, users $(csperf_users tracemgr_cs))" [ "$r" != 0 ]
        rmmod coresight 2>/dev/null; r=$?
        check "rmmod coresight refused while perf holds it (status $r)" [ "$r" != 0 ]
        kill -INT $pid; wait $pid
        check "the held session ends cleanly ($(tail -1 /tmp/csperf2.log))" grep -q 'Captured and wrote' /tmp/csperf2.log
        rm -f /tmp/csperf*.data /tmp/csperf.dump
    fi
    rmmod tracemgr_cs; r=$?
    check "rmmod tracemgr_cs after the sessions (status $r, cs_etm/cpu0 gone)" [ "$r" = 0 -a ! -e $cs/cpu0 ]
    if [ -x /usr/bin/perf ]; then
        perf record -e cs_etm// -a -o /tmp/csperf3.data -- true >/dev/null 2>&1; r=$?
        check "perf record without tracemgr_cs fails cleanly (status $r)" [ "$r" != 0 ]
        rm -f /tmp/csperf3.data
    fi
    insmod /lib/modules/tracemgr_cs.ko; r=$?
    check "insmod tracemgr_cs.ko again (status $r)" [ "$r" = 0 -a -e $cs/cpu0 ]
    rmmod tracemgr_cs && rmmod coresight; r=$?
    check "rmmod tracemgr_cs, then coresight (status $r)" [ "$r" = 0 ]
    check "no oops or warning ($(( $(csperf_oops) - oops0 )) new)" [ "$(csperf_oops)" = "$oops0" ]
}

# perf on /bin/workload through the hypervisor (linuxtest.csperf with the
# instruction source): per-thread (`$1` empty) or CPU-wide (`$1` = -a).
# perf report's top entry must be the workload's hot_loop; every
# instruction sample perf script gives for the workload must lie in its
# .text (/bin/workload.text: "start size", hex, written by make
# linux-guest); perf must report no decoder error.
csperf_workload_iters=20000
csperf_workload_test() {
    mode=per-thread; [ "$1" = -a ] && mode=CPU-wide
    export HOME=/tmp PERF_PAGER=cat PAGER=cat
    rm -f /tmp/wl.*
    set -- "$1" $(cat /bin/workload.text 2>/dev/null)
    [ -n "$3" ] || { say "FAIL /bin/workload.text gives no .text range"; return; }
    lo=$((0x$2)); hi=$((0x$2 + 0x$3))
    # CPU-wide, every process's user code is traced into each CPU's 64 KiB
    # buffer, which perf drains only when the event stops: perf's own
    # start-up would fill the buffer of the CPU it runs on. So the workload
    # runs on CPU 3 (started before the session, killed after it) and perf
    # with its `sleep 1` on CPU 1: CPU 3's capture is the workload's.
    # CPU 2, idle, is unplugged and replugged in the middle of the session:
    # perf takes its event off the CPU as it goes (the source's disable and
    # the sink's copy run on it before it dies) and the session goes on.
    if [ "$mode" = CPU-wide ]; then
        taskset 8 /bin/workload 1000000000000000 >/dev/null &
        wl=$!
        sleep 1
        c2=/sys/devices/system/cpu/cpu2/online
        taskset 2 perf record -e cs_etm//u -a -o /tmp/wl.data -- sh -c \
            "sleep 1; echo 0 > $c2; cat $c2 > /tmp/wl.off; sleep 1; echo 1 > $c2; cat $c2 > /tmp/wl.on; sleep 1" \
            >/tmp/wl.log 2>&1; r=$?
        kill -0 $wl 2>/dev/null; running=$?
        kill $wl; wait $wl 2>/dev/null
        check "the workload ran on CPU 3 for the whole session" [ "$running" = 0 ]
        check "CPU 2 was unplugged and replugged during the CPU-wide session (online: $(cat /tmp/wl.off 2>/dev/null) then $(cat /tmp/wl.on 2>/dev/null))" \
            [ "$(cat /tmp/wl.off 2>/dev/null)" = 0 -a "$(cat /tmp/wl.on 2>/dev/null)" = 1 ]
        what="-a (workload on CPU 3, perf on CPU 1, CPU 2 unplugged and replugged) -- sleep 3"
    else
        # On CPU 2, which (after the CPU-wide run) has been unplugged and
        # replugged: its source and sink work as before.
        taskset 4 perf record -e cs_etm//u -o /tmp/wl.data -- /bin/workload $csperf_workload_iters >/tmp/wl.log 2>&1; r=$?
        what="-- workload (on CPU 2)"
    fi
    csperf_volumes
    [ "$r" = 0 ] || head -5 /tmp/wl.log | while read -r l; do say "perf record ($mode): $l"; done
    check "perf record -e cs_etm//u $what ($mode, status $r: $(grep -h Captured /tmp/wl.log))" [ "$r" = 0 ]
    perf report -i /tmp/wl.data --stdio --sort comm,dso,sym >/tmp/wl.rep 2>/tmp/wl.err
    grep -E '%' /tmp/wl.rep | head -4 | while read -r l; do say "perf report ($mode): $l"; done
    top=$(grep -vE '^#|^$' /tmp/wl.rep | head -1)
    check "perf report's top entry ($mode) is the workload's hot_loop: $top" \
        sh -c "echo '$top' | grep -q 'workload  *workload  *\[\.\] hot_loop'"
    perf script -i /tmp/wl.data --itrace=i100 -F comm,ip,sym >/tmp/wl.script 2>>/tmp/wl.err
    in=0; out=0
    while read -r comm ip sym; do
        [ "$comm" = workload ] || continue
        case $ip in ''|*[!0-9a-f]*) out=$((out + 1)); continue ;; esac
        if [ $((0x$ip)) -ge $lo -a $((0x$ip)) -lt $hi ]; then in=$((in + 1)); else out=$((out + 1)); fi
    done < /tmp/wl.script
    head -3 /tmp/wl.script | while read -r l; do say "perf script ($mode): $l"; done
    check "perf script ($mode): $in instruction samples of the workload in its .text, $out outside" [ "$in" -gt 0 -a "$out" = 0 ]
    errs=$(grep -ciE 'error|fail' /tmp/wl.err)
    grep -iE 'error|fail|lost|warn' /tmp/wl.err | head -4 | while read -r l; do say "perf ($mode): $l"; done
    check "perf decodes without errors ($mode: $errs)" [ "$errs" = 0 ]
    perf report -i /tmp/wl.data -D 2>/dev/null | grep 'PERF_RECORD_AUX ' >/tmp/wl.aux
    say "perf data ($mode): $(ls -l /tmp/wl.data | awk '{print $5}') bytes in /tmp/wl.data, $(wc -l < /tmp/wl.aux) AUX records: $(head -2 /tmp/wl.aux | tr '\n' ' ')"
    rm -f /tmp/wl.*
}

# What each CPU's sink delivered since the last call (its stats/ files,
# guest-api/linux/tracemgr_cs.c): AUX records (truncated ones), bytes the
# hypervisor wrote, bytes copied to perf, bytes lost.
csperf_volumes() {
    for d in /sys/bus/coresight/devices/tracemgr_sink*; do
        [ -d $d/stats ] || continue
        n=${d##*tracemgr_sink}
        set -- $(cat $d/stats/records $d/stats/truncated $d/stats/written $d/stats/copied $d/stats/lost)
        set -- "$@" $(cat /tmp/vol.$n 2>/dev/null || echo 0 0 0 0 0)
        echo "$1 $2 $3 $4 $5" > /tmp/vol.$n
        [ $(($1 - $6)) = 0 ] && continue
        say "perf data ($mode) cpu$n: $(($1 - $6)) AUX records ($(($2 - $7)) truncated), $(($3 - $8)) bytes written by the hypervisor, $(($4 - $9)) copied to perf, $(($5 - ${10})) lost"
    done
}

# The whole perf check of linuxtest.csperf: the driver (csperf_test), then
# the workload per-thread and CPU-wide.
csperf_all() {
    csperf_test
    km=/lib/modules/$(uname -r)/kernel
    insmod $km/drivers/hwtracing/coresight/coresight.ko
    insmod /lib/modules/tracemgr_cs.ko; r=$?
    check "insmod tracemgr_cs.ko for the workload (status $r)" [ "$r" = 0 ]
    rm -f /tmp/vol.*
    csperf_workload_test -a
    csperf_workload_test
    csperf_filter_test
    rmmod tracemgr_cs && rmmod coresight; r=$?
    check "rmmod tracemgr_cs, then coresight, after the workload (status $r)" [ "$r" = 0 ]
}

# An address range filter through perf (`--filter 'filter cold_setup @
# /bin/workload'`: perf resolves the symbol in the ELF, the kernel maps it
# to where the file is mapped, the source asks for the ABI's ADDR_FILTER):
# every instruction sample then lies in cold_setup, and hot_loop, which
# runs a hundred times longer, is not traced at all.
csperf_filter_test() {
    mode=filter
    export HOME=/tmp PERF_PAGER=cat PAGER=cat
    rm -f /tmp/wf.*
    f='filter cold_setup @ /bin/workload'
    perf record -e cs_etm//u --filter "$f" -o /tmp/wf.data -- /bin/workload 20000 2000 >/tmp/wf.log 2>&1; r=$?
    [ "$r" = 0 ] || head -5 /tmp/wf.log | while read -r l; do say "perf record (filter): $l"; done
    check "perf record -e cs_etm//u --filter '$f' -- workload (status $r: $(grep -h Captured /tmp/wf.log))" [ "$r" = 0 ]
    perf script -i /tmp/wf.data --itrace=i10 -F comm,ip,sym >/tmp/wf.script 2>/tmp/wf.err
    in=$(grep -c '^ *workload .* cold_setup$' /tmp/wf.script)
    out=$(grep -v ' cold_setup$' /tmp/wf.script | grep -c .)
    head -2 /tmp/wf.script | while read -r l; do say "perf script (filter): $l"; done
    grep -v ' cold_setup$' /tmp/wf.script | head -3 | while read -r l; do say "perf script (filter), outside: $l"; done
    check "perf script (filter): $in instruction samples in cold_setup, $out elsewhere" [ "$in" -gt 0 -a "$out" = 0 ]
    csperf_volumes
    rm -f /tmp/wf.*
}
