/*
 * SPIN peer of `haltlab explore panic-race`: every CPU calls panic() at once
 * (src/haltlab/scenarios/panic_race.py on kernel/panic.py, kernel/printk.py,
 * kernel/printk_ringbuffer.py, kernel/arch/x86.py, machine/, engine/explorer.py;
 * kernel v7.1, x86, stock final loop, quiescent timeouts). printk is v7.1's as
 * kernel/printk.py has it: vprintk_emit() -> vprintk_store() on the lockless
 * ring, console_trylock_spinning(), and 6.1's console_unlock() around
 * console_flush_all() / console_emit_next_record(), with every panic-time
 * commit of v7.1 (779dbc2e78d7, 51a1d258e50e, d51507098ff9, d04d5882cd67,
 * b1c4c67a5e90, eacb04ff3c5b, the final flush). benchmarks/peers/README.md
 * maps every variable here to the model and says where the state counts differ.
 *
 *   spin -DNCPUS=3 -a panic_race.pml                 the stock cmpxchg claim
 *   spin -DNCPUS=3 -DLOAD_STORE -a panic_race.pml    the broken read-then-write claim
 *
 * One SPIN transition is one choice of the explorer: a CPU takes its next
 * shared step (`cN`), an interrupt in flight arrives (`iN.NMI`), a bounded
 * wait times out (`tN`). Each CPU is a state machine on explicit program
 * counters (`pc` for the task frame, `nmi` for an NMI handler frame on top of
 * it), so a step is one guarded d_step running from one gate (a shared
 * operation the explorer branches on) to the next, local operations and pure
 * computation included, exactly as ExplorerDriver.step() runs a strand.
 */

#ifndef NCPUS
#define NCPUS 2
#endif
#define ALL_CPUS ((1 << NCPUS) - 1)
#define BIT(c) (1 << (c))
#define AT_MOST_ONE(m) (((m) & ((m) - 1)) == 0)
#define me _pid
#define PANIC_CPU_INVALID (-1)

/* --- shared memory (kernel/kernel.py's Vars; stop_in_progress,
 * suppress_panic_printk, console_dropped, console_owner, console_waiter and
 * console_owner_lock are never written in the race, so they are left out) --- */
short panic_cpu = PANIC_CPU_INVALID;
byte cpu_online_mask = ALL_CPUS;
short stopping_cpu = -1;
byte cpus_stop_mask = 0;
bool nmi_stop_registered = 0;
bool suppress_printk = 0;
/* prb, the ring (kernel/printk_ringbuffer.py's Ring): the next sequence number
 * to reserve and, one bit per sequence number, which records are finalized.
 * The race prints at most 3 records per panic CPU into a 128 KiB ring, so the
 * tail never moves and no record is dropped (asserted at prb_reserve()). */
byte log_next_seq = 0;
byte prb_finalized = 0;
byte console_seq = 0;     /* the console's con->seq (6.1: advanced after the driver) */
bool console_sem = 0;

/* --- interrupts in flight (ExplorerDriver.inflight) --- */
bool reboot_inflight[NCPUS];
bool nmi_inflight[NCPUS];

/* --- ghost state (Kernel.ghost), as CPU masks --- */
byte panic_owners = 0;
byte self_stopped = 0;
byte stopped = 0;
byte in_panic_loop = 0;

/* CPUs in a wait with a deadline (a function of their pc; read by the
 * never_deadlock monitor, which cannot see other processes' locals). */
byte timed_wait = 0;

/* Scratch inside one d_step: not part of the state vector. */
hidden byte tmp;

/* --- program counters: one per gate (a held shared op) or wait --- */
/* panic() and panic_try_start() / panic_on_other_cpu() */
#define T_CLAIM          1   /* atomic_try_cmpxchg(panic_cpu) or, load-store, READ_ONCE(panic_cpu) */
#define T_LS_WRITE       2   /* load-store only: WRITE_ONCE(panic_cpu, this_cpu) */
#define T_ON_OTHER       3   /* panic_on_other_cpu(): READ_ONCE(panic_cpu) */
#define T_SELF_STOP      4   /* panic_smp_self_stop(): spin_until(false), held */
#define T_SELF_STOP_WAIT 5   /*   ... spinning, irqs off, forever */
/* printk() = vprintk_emit() (one frame; ret_printk is the caller's next gate) */
#define P_SUPPRESS       10  /* READ_ONCE(suppress_printk) */
#define P_OTHER_CPU      11  /* other_cpu_in_panic(): READ_ONCE(panic_cpu) (779dbc2e78d7) */
#define P_RESERVE        12  /* vprintk_store(): prb_reserve(prb), irqs saved off */
#define P_STORE_DELAY    13  /*   ... ndelay(printk_store_ns): formatting the text */
#define P_COMMIT         14  /*   ... prb_final_commit(prb), irqs restored */
#define P_TRY_OTHER      15  /* console_trylock_spinning() -> console_trylock(): other_cpu_in_panic() (51a1d258e50e) */
#define P_TRYLOCK        16  /*   ... down_trylock(console_sem): atomic_try_cmpxchg(console_sem, 0, 1) */
#define P_NO_SPIN        17  /*   ... panic_in_progress(): READ_ONCE(panic_cpu) (d51507098ff9: no spinning) */
/* console_flush_all() and console_emit_next_record() (one frame; ret_cu says who called it) */
#define E_SEQ            20  /* console_emit_next_record(): seq = READ_ONCE(console_seq) */
#define E_SKIP           21  /*   ... _skip_non_finalized(): READ_ONCE(panic_cpu) == this_cpu (b1c4c67a5e90) */
#define E_READ           22  /*   ... prb_read_valid(prb, seq): READ_ONCE(prb) */
#define E_OWNER          23  /*   ... console_lock_spinning_enable(): panic_in_progress() (d04d5882cd67) */
#define E_DROPPED        24  /*   ... call_console_driver(): READ_ONCE(console_dropped) */
#define E_UART           25  /*   ... uart_write() of the record */
#define E_SEQ_WRITE      26  /*   ... WRITE_ONCE(console_seq, r.seq + 1) */
#define E_HANDOVER       27  /*   ... console_lock_spinning_disable_and_check(): panic_in_progress() */
#define F_SEQ            28  /* console_flush_all(): READ_ONCE(console_seq) after a pass */
#define F_OTHER_CPU      29  /*   ... other_cpu_in_panic() (8ebc476fd51e) */
/* console_unlock() around console_flush_all() (6.1, a699449bb13b) */
#define U_UP             44  /* up(console_sem): WRITE_ONCE(console_sem, 0) */
#define U_NEXT           45  /* prb_read_valid(prb, next_seq): READ_ONCE(prb) */
#define U_RETRY_OTHER    46  /* console_trylock() again: other_cpu_in_panic() */
#define U_RETRY_LOCK     47  /*   ... down_trylock(console_sem) */
/* native_stop_other_cpus(wait=false), 6.5+ (stop_other_cpus_robust) */
#define S_STOPPING       30  /* atomic_try_cmpxchg(stopping_cpu, -1, this_cpu) */
#define S_ONLINE         31  /* READ_ONCE(cpu_online_mask) */
#define S_MASK           32  /* WRITE_ONCE(cpus_stop_mask, others) */
#define S_IPI            33  /* send_IPI_mask(all but self, REBOOT) */
#define S_SPIN1          34  /* spin_until(cpus_stop_mask == 0, 1 s), held */
#define S_SPIN1_WAIT     35  /*   ... waiting: steps when the mask is empty, or times out */
#define S_REMAINING      36  /* READ_ONCE(cpus_stop_mask) */
#define S_NMI_REG        37  /* WRITE_ONCE(nmi_stop_registered, true) */
#define S_SEND_NMI       38  /* send_NMI_mask(remaining) */
#define S_SPIN2          39  /* spin_until(cpus_stop_mask == 0, 10 ms), held */
#define S_SPIN2_WAIT     40
#define S_APIC_DELAY     41  /* _disable_local_apic_and_clear(): ndelay(stop_this_cpu_ns) */
#define S_CLEAR          42  /* WRITE_ONCE(cpus_stop_mask, 0) */
/* the rest of panic() */
#define T_SUPPRESS       51  /* WRITE_ONCE(suppress_printk, 1) */
#define T_PANIC_LOOP     53  /* the final loop's mdelay(PANIC_TIMER_STEP): the goal */
/* ret_cu: who called console_flush_all() */
#define CU_PRINTK        1   /* console_unlock() from vprintk_emit() */
#define CU_FLUSH1        2   /* console_flush_on_panic() after the notifiers (eacb04ff3c5b: no console_sem) */
#define CU_FLUSH2        3   /* the final console_flush_on_panic() (panic_final_flush) */
#define NO_RECORD        255 /* prb_read_valid() found nothing to read */
/* do_nmi() and stop_this_cpu() in the NMI frame */
#define N_REGISTERED     1   /* READ_ONCE(nmi_stop_registered) */
#define N_STOPPING       2   /* READ_ONCE(stopping_cpu) */
#define N_CLEAR_ONLINE   3   /* clear_bit(cpu, cpu_online_mask) */
#define N_DELAY          4   /* ndelay(stop_this_cpu_ns): mcheck_cpu_clear() */
#define N_CLEAR_STOP     5   /* clear_bit(cpu, cpus_stop_mask): "I'm done" */
#define N_HALT           6   /* native_halt() with IF=0 inside the NMI: for good */

/* A step of the task frame (no handler on top of it) or of the NMI frame. */
#define TASK(p) (nmi == 0 && pc == (p))
#define HANDLER(p) (nmi == (p))

/* A CPU passes the panic_cpu claim: the "one panic CPU" property. */
inline pass_claim() {
    panic_owners = panic_owners | BIT(me);
    assert(AT_MOST_ONE(panic_owners));
    ret_printk = S_STOPPING;             /* printk("Kernel panic - not syncing: race") */
    pc = P_SUPPRESS
}

/* Enter printk() from a caller whose next gate is `after`. */
inline printk(after) {
    ret_printk = after;
    pc = P_SUPPRESS
}

/* Return from printk() to its caller's next gate. */
inline printk_return() {
    pc = ret_printk;
    ret_printk = 0
}

/* Enter console_flush_all() for `caller` (a CU_*). */
inline flush_all(caller) {
    ret_cu = caller;
    next_seq = 0;
    pc = E_SEQ
}

/* Return from console_unlock() or console_flush_on_panic() (their frames and
 * locals go) to the caller's next gate. */
inline cu_return() {
    tmp = ret_cu;
    ret_cu = 0;
    next_seq = 0;
    flushed = 0;
    if
    :: tmp == CU_PRINTK -> printk_return()
    :: tmp == CU_FLUSH1 -> printk(T_SUPPRESS)           /* "---[ end Kernel panic ..." */
    :: tmp == CU_FLUSH2 -> panic_loop()
    fi
}

/* console_flush_all() returns `done` as `flushed` (its handover is never true:
 * no owner is advertised in a panic): into console_unlock(), which up()s
 * console_sem, or out of console_flush_on_panic(). */
inline flush_all_return(done) {
    seq = 0;
    progress = 0;
    if
    :: ret_cu == CU_PRINTK -> flushed = done; pc = U_UP
    :: else -> cu_return()
    fi
}

/* _prb_read_valid(): into `r`, the first finalized record at or after `from_seq`,
 * or NO_RECORD when there is none yet or the next one is still being written
 * (passed over when `may_skip` and later records exist: b1c4c67a5e90). */
inline read_valid(from_seq, may_skip) {
    r = NO_RECORD;
    tmp = from_seq;
    do
    :: tmp >= log_next_seq -> break
    :: tmp < log_next_seq && (prb_finalized & BIT(tmp)) -> r = tmp; break
    :: tmp < log_next_seq && !(prb_finalized & BIT(tmp)) && !(may_skip && tmp + 1 < log_next_seq) -> break
    :: tmp < log_next_seq && !(prb_finalized & BIT(tmp)) && (may_skip && tmp + 1 < log_next_seq) -> tmp++
    od
}

/* other_cpu_in_panic(), on a value of panic_cpu just read. */
#define OTHER_CPU_IN_PANIC (panic_cpu != PANIC_CPU_INVALID && panic_cpu != me)

/* native_stop_other_cpus() returned: stop_returned(), the notifier chain
 * (no pvpanic, no lines with a fixed-size dump), console_flush_on_panic(),
 * which since eacb04ff3c5b is console_flush_all() without console_sem. */
inline stop_return() {
    others = 0;
    remaining = 0;
    flags = 0;
    flush_all(CU_FLUSH1)
}

/* _disable_local_apic_and_clear()'s local ops, up to its ndelay gate. */
inline apic_off_and_clear() {
    flags = irqs_enabled;      /* local_irq_save() */
    irqs_enabled = 0;
    apic_enabled = 0;          /* disable_local_APIC() */
    pc = S_APIC_DELAY
}

/* After the final flush: local_irq_enable(), then the final loop. */
inline panic_loop() {
    irqs_enabled = 1;
    assert(!reboot_pending && !nmi_pending);   /* nothing to take at sti */
    in_panic_loop = in_panic_loop | BIT(me);
    /* "settled" (checked where the goal is reached; the explorer checks it
     * in goal and terminal states): one owner, panic_cpu names it, every
     * other CPU entered panic_smp_self_stop(). */
    assert(panic_owners == BIT(me) && panic_cpu == me);
    assert((self_stopped | BIT(me)) == ALL_CPUS);
    /* The explorer expands no goal state; here the winner has no step at
     * T_PANIC_LOOP, and no other CPU has one either: each is halted in its
     * NMI handler (it cleared its cpus_stop_mask bit as its last write before
     * native_halt()) and nothing is in flight. Checked, so that the goal
     * needs no guard on every other transition. */
    assert(stopped == (ALL_CPUS & ~BIT(me)) && cpus_stop_mask == 0);
    tmp = 0;
    do
    :: tmp < NCPUS -> assert(!reboot_inflight[tmp] && !nmi_inflight[tmp]); tmp++
    :: else -> break
    od;
    pc = T_PANIC_LOOP
}

/* interrupt_now(): take the highest-priority deliverable interrupt. */
inline interrupt_now() {
    if
    :: !in_nmi && nmi_pending ->
        nmi_pending = 0;
        in_nmi = 1;
        nmi = N_REGISTERED               /* irq_entry(), then do_nmi()'s first read */
    :: !in_nmi && !nmi_pending && irqs_enabled && reboot_pending ->
        assert(false)                    /* REBOOT_VECTOR is never taken in the race */
    :: else
    fi
}

/* do_nmi() returns: iret into the task's held op or a wait whose condition is
 * still false (all this race could return into; it never does). */
inline nmi_return() {
    nmi = 0;
    in_nmi = 0;
    assert(pc != S_SPIN1_WAIT && pc != S_SPIN2_WAIT);
    interrupt_now()
}

active [NCPUS] proctype cpu()
{
    byte pc = T_CLAIM;     /* the task frame: panic() and what it calls */
    byte nmi = 0;          /* the NMI frame on top of it, 0 for none */
    byte ret_printk = 0;   /* printk()'s caller: where it returns to */
    byte ret_cu = 0;       /* console_flush_all()'s caller */
    byte store_seq = 0;    /* vprintk_store()'s `seq`: the record reserved */
    bool store_flags = 0;  /* vprintk_store()'s saved flags (printk_enter_irqsave()) */
    byte seq = 0;          /* console_emit_next_record()'s `seq` */
    bool skip_nf = 0;        /*   ... _skip_non_finalized()'s answer */
    byte r = 0;            /*   ... the record read (its seq), NO_RECORD for none */
    bool emit_flags = 0;   /*   ... saved flags (printk_safe_enter_irqsave()) */
    bool progress = 0;     /* console_flush_all()'s `progress` */
    byte next_seq = 0;     /*   ... its `next_seq`, returned to console_unlock() */
    bool flushed = 0;      /* console_unlock()'s `flushed` */
    byte others = 0;       /* native_stop_other_cpus()'s locals */
    byte remaining = 0;
    bool flags = 0;        /* _disable_local_apic_and_clear()'s saved flags */
    /* The CPU's hardware (machine/cpu.py's fingerprint), written only by this
     * CPU's own transitions (an arrival is one), hence local: SPIN's partial
     * order reduction can then tell a purely local step. irqs_enabled starts
     * at 0: the explorer's initial state is taken after start_task() ran every
     * CPU to its first shared op, past local_irq_disable(). */
    bool irqs_enabled = 0;
    bool in_nmi = 0;
    bool apic_enabled = 1;
    bool reboot_pending = 0;   /* REBOOT_VECTOR's bit in the IRR (LOCAL_TIMER never fires) */
    bool nmi_pending = 0;      /* the latched NMI */

end_cpu:
    do
    /* --- the claim --- */
#ifndef LOAD_STORE
    :: d_step { TASK(T_CLAIM) && panic_cpu == PANIC_CPU_INVALID ->
        panic_cpu = me; pass_claim() }
    :: d_step { TASK(T_CLAIM) && panic_cpu != PANIC_CPU_INVALID -> pc = T_ON_OTHER }
#else
    :: d_step { TASK(T_CLAIM) && panic_cpu == PANIC_CPU_INVALID -> pc = T_LS_WRITE }
    :: d_step { TASK(T_CLAIM) && panic_cpu != PANIC_CPU_INVALID -> pc = T_ON_OTHER }
    :: d_step { TASK(T_LS_WRITE) -> panic_cpu = me; pass_claim() }
#endif
    :: d_step { TASK(T_ON_OTHER) ->
        if
        :: panic_cpu != PANIC_CPU_INVALID && panic_cpu != me ->
            self_stopped = self_stopped | BIT(me);
            pc = T_SELF_STOP
        :: else -> pass_claim()
        fi }
    :: d_step { TASK(T_SELF_STOP) -> pc = T_SELF_STOP_WAIT }   /* spin_until(false) */

    /* --- printk() = vprintk_emit() --- */
    :: d_step { TASK(P_SUPPRESS) ->
        if
        :: suppress_printk -> printk_return()      /* "Suppress unimportant messages after panic happens" */
        :: else -> pc = P_OTHER_CPU
        fi }
    :: d_step { TASK(P_OTHER_CPU) ->
        if
        :: OTHER_CPU_IN_PANIC -> printk_return()   /* 779dbc2e78d7: out of the ring */
        :: else ->
            store_flags = irqs_enabled;          /* vprintk_store(): local_irq_save() */
            irqs_enabled = 0;
            pc = P_RESERVE
        fi }
    /* vprintk_store() */
    :: d_step { TASK(P_RESERVE) ->               /* prb_reserve(): the ring never fills here */
        assert(log_next_seq < 8);
        store_seq = log_next_seq;
        log_next_seq++;
        pc = P_STORE_DELAY }
    :: d_step { TASK(P_STORE_DELAY) -> pc = P_COMMIT }
    :: d_step { TASK(P_COMMIT) ->                /* prb_final_commit() */
        prb_finalized = prb_finalized | BIT(store_seq);
        store_seq = 0;
        irqs_enabled = store_flags;              /* local_irq_restore() */
        store_flags = 0;
        pc = P_TRY_OTHER }
    /* console_trylock_spinning() */
    :: d_step { TASK(P_TRY_OTHER) ->
        if
        :: OTHER_CPU_IN_PANIC -> pc = P_NO_SPIN    /* console_trylock() fails: left to the panic CPU */
        :: else -> pc = P_TRYLOCK
        fi }
    :: d_step { TASK(P_TRYLOCK) ->
        if
        :: console_sem == 0 -> console_sem = 1; flush_all(CU_PRINTK)   /* console_unlock() */
        :: else -> pc = P_NO_SPIN
        fi }
    :: d_step { TASK(P_NO_SPIN) ->
        /* Every printk of the race runs after the claim, so "Spinning is not
         * safe when the system is stopped" always holds: the owner/waiter
         * hand-over (console_owner_lock's sections) is never entered. */
        assert(panic_cpu != PANIC_CPU_INVALID);
        printk_return() }

    /* --- console_flush_all(): console_emit_next_record() per pass --- */
    :: d_step { TASK(E_SEQ) -> seq = console_seq; pc = E_SKIP }
    :: d_step { TASK(E_SKIP) -> skip_nf = (panic_cpu == me); pc = E_READ }
    :: d_step { TASK(E_READ) ->
        read_valid(seq, skip_nf);
        skip_nf = 0;
        if
        :: r == NO_RECORD -> r = 0; progress = 0; pc = F_SEQ
        :: else ->
            emit_flags = irqs_enabled;           /* printk_safe_enter_irqsave() */
            irqs_enabled = 0;
            pc = E_OWNER
        fi }
    :: d_step { TASK(E_OWNER) ->
        assert(panic_cpu != PANIC_CPU_INVALID);  /* d04d5882cd67: no owner advertised in a panic */
        pc = E_DROPPED }
    :: d_step { TASK(E_DROPPED) -> pc = E_UART } /* console_dropped is 0: no "** N printk messages dropped **" */
    :: d_step { TASK(E_UART) -> pc = E_SEQ_WRITE }
    :: d_step { TASK(E_SEQ_WRITE) -> console_seq = r + 1; pc = E_HANDOVER }
    :: d_step { TASK(E_HANDOVER) ->
        assert(panic_cpu != PANIC_CPU_INVALID);  /* d04d5882cd67: no waiter to hand over to */
        irqs_enabled = emit_flags;               /* printk_safe_exit_irqrestore() */
        emit_flags = 0;
        r = 0;
        progress = 1;
        pc = F_SEQ }
    :: d_step { TASK(F_SEQ) ->
        if
        :: console_seq > next_seq -> next_seq = console_seq
        :: else
        fi;
        seq = 0;
        if
        :: !progress -> flush_all_return(1)
        :: else -> pc = F_OTHER_CPU
        fi }
    :: d_step { TASK(F_OTHER_CPU) ->
        if
        :: OTHER_CPU_IN_PANIC -> flush_all_return(0)   /* "Allow panic_cpu to take over the consoles safely" */
        :: else -> progress = 0; pc = E_SEQ
        fi }

    /* --- console_unlock() after console_flush_all() --- */
    :: d_step { TASK(U_UP) ->
        console_sem = 0;                         /* __console_unlock() */
        if
        :: flushed -> pc = U_NEXT
        :: else -> cu_return()
        fi }
    :: d_step { TASK(U_NEXT) ->
        read_valid(next_seq, 0);
        if
        :: r == NO_RECORD -> r = 0; cu_return()
        :: else -> r = 0; pc = U_RETRY_OTHER   /* a record came meanwhile: try again */
        fi }
    :: d_step { TASK(U_RETRY_OTHER) ->
        if
        :: OTHER_CPU_IN_PANIC -> cu_return()
        :: else -> pc = U_RETRY_LOCK
        fi }
    :: d_step { TASK(U_RETRY_LOCK) ->
        if
        :: console_sem == 0 -> console_sem = 1; flushed = 0; flush_all(CU_PRINTK)
        :: else -> cu_return()
        fi }

    /* --- smp_send_stop() = native_stop_other_cpus(wait=false) --- */
    :: d_step { TASK(S_STOPPING) ->
        if
        :: stopping_cpu == -1 -> stopping_cpu = me; pc = S_ONLINE
        :: else -> stop_return()             /* only the first caller stops others */
        fi }
    :: d_step { TASK(S_ONLINE) -> others = cpu_online_mask & ~BIT(me); pc = S_MASK }
    :: d_step { TASK(S_MASK) ->
        cpus_stop_mask = others;
        if
        :: others != 0 -> pc = S_IPI
        :: else -> pc = S_REMAINING
        fi }
    :: d_step { TASK(S_IPI) ->
        tmp = 0;
        do
        :: tmp < NCPUS -> if :: tmp != me -> reboot_inflight[tmp] = 1 :: else fi; tmp++
        :: else -> break
        od;
        pc = S_SPIN1 }
    :: d_step { TASK(S_SPIN1) ->
        if
        :: cpus_stop_mask == 0 -> pc = S_REMAINING
        :: else -> timed_wait = timed_wait | BIT(me); pc = S_SPIN1_WAIT
        fi }
    :: d_step { TASK(S_SPIN1_WAIT) && cpus_stop_mask == 0 ->
        timed_wait = timed_wait & ~BIT(me); pc = S_REMAINING }
    :: atomic { timeout && TASK(S_SPIN1_WAIT) ->              /* t: the 1 s wait times out */
        timed_wait = timed_wait & ~BIT(me); pc = S_REMAINING }
    :: d_step { TASK(S_REMAINING) ->
        remaining = cpus_stop_mask;
        if
        :: remaining != 0 -> pc = S_NMI_REG
        :: else -> apic_off_and_clear()
        fi }
    :: d_step { TASK(S_NMI_REG) -> nmi_stop_registered = 1; printk(S_SEND_NMI) }  /* "Shutting down cpus with NMI" */
    :: d_step { TASK(S_SEND_NMI) ->
        tmp = 0;
        do
        :: tmp < NCPUS -> if :: remaining & BIT(tmp) -> nmi_inflight[tmp] = 1 :: else fi; tmp++
        :: else -> break
        od;
        pc = S_SPIN2 }
    :: d_step { TASK(S_SPIN2) ->
        if
        :: cpus_stop_mask == 0 -> apic_off_and_clear()
        :: else -> timed_wait = timed_wait | BIT(me); pc = S_SPIN2_WAIT
        fi }
    :: d_step { TASK(S_SPIN2_WAIT) && cpus_stop_mask == 0 ->
        timed_wait = timed_wait & ~BIT(me); apic_off_and_clear() }
    :: atomic { timeout && TASK(S_SPIN2_WAIT) ->              /* t: the 10 ms wait times out */
        timed_wait = timed_wait & ~BIT(me); apic_off_and_clear() }
    :: d_step { TASK(S_APIC_DELAY) -> irqs_enabled = flags; pc = S_CLEAR }   /* local_irq_restore() */
    :: d_step { TASK(S_CLEAR) -> cpus_stop_mask = 0; stop_return() }

    /* --- the rest of panic(): suppress_printk, then the final console_flush_on_panic() --- */
    :: d_step { TASK(T_SUPPRESS) -> suppress_printk = 1; flush_all(CU_FLUSH2) }

    /* --- interrupts in flight arrive (raise_interrupt(), interrupt_now()) --- */
    :: d_step { reboot_inflight[me] ->
        reboot_inflight[me] = 0;
        if
        :: apic_enabled -> reboot_pending = 1
        :: else
        fi;
        interrupt_now() }
    :: d_step { nmi_inflight[me] ->
        nmi_inflight[me] = 0;
        nmi_pending = 1;
        interrupt_now() }

    /* --- the NMI frame: do_nmi(), stop_this_cpu() --- */
    :: d_step { HANDLER(N_REGISTERED) ->
        if
        :: nmi_stop_registered -> nmi = N_STOPPING
        :: else -> nmi_return()
        fi }
    :: d_step { HANDLER(N_STOPPING) ->
        if
        :: stopping_cpu == me -> nmi_return()
        :: else ->
            stopped = stopped | BIT(me);
            irqs_enabled = 0;
            nmi = N_CLEAR_ONLINE
        fi }
    :: d_step { HANDLER(N_CLEAR_ONLINE) ->
        cpu_online_mask = cpu_online_mask & ~BIT(me);
        apic_enabled = 0;             /* disable_local_APIC() */
        nmi = N_DELAY }
    :: d_step { HANDLER(N_DELAY) -> nmi = N_CLEAR_STOP }
    :: d_step { HANDLER(N_CLEAR_STOP) ->
        cpus_stop_mask = cpus_stop_mask & ~BIT(me);
        nmi = N_HALT }                    /* native_halt(): no NMI can wake it inside one */
    od
}

/* never_deadlock(): a state with no choice left (no step, no arrival, no
 * timeout) that is not a goal. Enabled only in such a state, so it adds no
 * states to a search that passes. */
active proctype deadlock()
{
end_monitor:
    atomic { timeout && in_panic_loop == 0 && timed_wait == 0 -> assert(false) }
}
