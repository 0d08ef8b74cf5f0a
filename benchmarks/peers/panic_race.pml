/*
 * SPIN peer of `haltlab explore panic-race`: every CPU calls panic() at once
 * (src/haltlab/scenarios/panic_race.py on kernel/panic.py, kernel/printk.py,
 * kernel/arch/x86.py, machine/, engine/explorer.py; kernel v7.1, x86, stock
 * final loop, quiescent timeouts). benchmarks/peers/README.md maps every
 * variable here to the model and says where the state counts differ.
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

/* --- shared memory (kernel/kernel.py's Vars; stop_in_progress is never written) --- */
short panic_cpu = PANIC_CPU_INVALID;
byte cpu_online_mask = ALL_CPUS;
short stopping_cpu = -1;
byte cpus_stop_mask = 0;
bool nmi_stop_registered = 0;
bool suppress_printk = 0;
byte log_next_seq = 0;
byte console_seq = 0;
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
/* printk() (one frame; ret_printk is the caller's next gate) */
#define P_SUPPRESS       10  /* READ_ONCE(suppress_printk) */
#define P_STORE_DELAY    11  /* vprintk_store(): ndelay(printk_store_ns) */
#define P_SEQ            12  /* atomic_add_return(log_next_seq, 1) */
#define P_TRYLOCK        13  /* console_trylock(): atomic_try_cmpxchg(console_sem, 0, 1) */
/* console_unlock() (one frame; ret_cu says who called it) */
#define C_SEQ            20  /* seq = READ_ONCE(console_seq) */
#define C_NEXT           21  /* seq >= READ_ONCE(log_next_seq)? */
#define C_UART           22  /* call_console_driver(): uart_write() */
#define C_SEQ_WRITE      23  /* WRITE_ONCE(console_seq, seq + 1) */
#define C_SEM_UP         24  /* WRITE_ONCE(console_sem, 0) */
#define C_RESEQ          25  /* READ_ONCE(console_seq) >= ... */
#define C_RENEXT         26  /*   ... READ_ONCE(log_next_seq)? */
#define C_RETRY          27  /* console_trylock() again */
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
#define F_SEM1           50  /* console_flush_on_panic(): WRITE_ONCE(console_sem, 1) */
#define T_SUPPRESS       51  /* WRITE_ONCE(suppress_printk, 1) */
#define F_SEM2           52  /* the final flush (panic_final_flush): WRITE_ONCE(console_sem, 1) */
#define T_PANIC_LOOP     53  /* the final loop's mdelay(PANIC_TIMER_STEP): the goal */
/* ret_cu: who called console_unlock() */
#define CU_PRINTK        1
#define CU_FLUSH1        2
#define CU_FLUSH2        3
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

/* Return from console_unlock() (its frame and locals go). */
inline cu_return() {
    tmp = ret_cu;
    ret_cu = 0;
    seq = 0;
    if
    :: tmp == CU_PRINTK -> printk_return()
    :: tmp == CU_FLUSH1 -> printk(T_SUPPRESS)           /* "---[ end Kernel panic ..." */
    :: tmp == CU_FLUSH2 -> panic_loop()
    fi
}

/* native_stop_other_cpus() returned: stop_returned(), the notifier chain
 * (no pvpanic, no lines with a fixed-size dump), console_flush_on_panic(). */
inline stop_return() {
    others = 0;
    remaining = 0;
    flags = 0;
    pc = F_SEM1
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
    byte ret_cu = 0;       /* console_unlock()'s caller */
    byte seq = 0;          /* console_unlock()'s local `seq` */
    byte seq_read = 0;     /* the value of READ_ONCE(console_seq) held across the next read */
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

    /* --- printk() --- */
    :: d_step { TASK(P_SUPPRESS) ->
        if
        :: suppress_printk -> printk_return()
        :: else -> pc = P_STORE_DELAY
        fi }
    :: d_step { TASK(P_STORE_DELAY) -> pc = P_SEQ }
    :: d_step { TASK(P_SEQ) -> log_next_seq++; pc = P_TRYLOCK }
    :: d_step { TASK(P_TRYLOCK) ->
        if
        :: console_sem == 0 -> console_sem = 1; ret_cu = CU_PRINTK; pc = C_SEQ
        :: else -> printk_return()
        fi }

    /* --- console_unlock() --- */
    :: d_step { TASK(C_SEQ) -> seq = console_seq; pc = C_NEXT }
    :: d_step { TASK(C_NEXT) ->
        if
        :: seq >= log_next_seq -> pc = C_SEM_UP
        :: else -> pc = C_UART
        fi }
    :: d_step { TASK(C_UART) -> pc = C_SEQ_WRITE }
    :: d_step { TASK(C_SEQ_WRITE) -> console_seq = seq + 1; pc = C_SEQ }
    :: d_step { TASK(C_SEM_UP) -> console_sem = 0; pc = C_RESEQ }
    :: d_step { TASK(C_RESEQ) -> seq_read = console_seq; pc = C_RENEXT }
    :: d_step { TASK(C_RENEXT) ->
        if
        :: seq_read >= log_next_seq -> seq_read = 0; cu_return()
        :: else -> seq_read = 0; pc = C_RETRY
        fi }
    :: d_step { TASK(C_RETRY) ->
        if
        :: console_sem == 0 -> console_sem = 1; pc = C_SEQ
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

    /* --- the rest of panic() --- */
    :: d_step { TASK(F_SEM1) -> console_sem = 1; ret_cu = CU_FLUSH1; pc = C_SEQ }
    :: d_step { TASK(T_SUPPRESS) -> suppress_printk = 1; pc = F_SEM2 }
    :: d_step { TASK(F_SEM2) -> console_sem = 1; ret_cu = CU_FLUSH2; pc = C_SEQ }

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
