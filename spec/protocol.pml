/*
 * spec/protocol.pml - a Promela model of the core of weft's sync protocol.
 *
 * Checked with spin 6.5 by spec/check.sh. spec/README.md says what is
 * modelled and what is abstracted away, lists the properties, the bounds,
 * the reductions and the mutations.
 *
 * Section names in quotes refer to docs/PROTOCOL.md. "(ext)" marks the
 * protocol extension that PROTOCOL.md is being extended with: incarnations,
 * REJECT, transactions, incremental catch-up.
 *
 * Shape of the model. All state is global, and every step of every
 * process is one d_step, so the fault injector (proctype Env) can crash the
 * server or a replica, or drop a connection, between any two steps.
 *
 * Units. A unit is one op, or one transaction (ext: consecutive ops of one
 * (replica, incarnation), committed or rejected all or nothing, occupying
 * one position). Each unit a replica writes gets a model-only slot number,
 * never reused; its global id is gid = replica * NU + slot, and sets of
 * units are bitmasks of gids. The identity of a unit (uinc, ufirst..ulast)
 * and its validity (ubad) are fixed when it is written: they stand for the
 * op bytes, which travel unchanged in PUSH and CHANGES.
 */

/* ------------------------------------------------------------------ */
/* Bounds (override with -D; spec/README.md "Bounds")                   */
/* ------------------------------------------------------------------ */

/*
 * The protocol as implemented (docs/PROTOCOL.md): a re-pushed unit that was
 * rejected is rejected again (the server keeps rejections durably), and P5
 * is checked. -DRULE_REJECT_ONCE models the rule as first written (finding
 * F2 in README.md), which fails P5.
 */
#ifndef RULE_REJECT_ONCE
#ifndef FIX_REJECT_RESEND
#define FIX_REJECT_RESEND
#endif
#ifndef CHECK_REJECT_KNOWN
#define CHECK_REJECT_KNOWN
#endif
#endif

#define NR 2                 /* replicas */
#ifndef NU
#define NU 2                 /* units replica 0 writes, over all its incarnations */
#endif
#ifndef NU1
#define NU1 1                /* units replica 1 writes (at most NU) */
#endif
#ifndef MAX_FAULTS
#define MAX_FAULTS 2         /* faults of all kinds together, in one run */
#endif
#ifndef MAX_SRV_CRASH
#define MAX_SRV_CRASH 1      /* server crashes (each followed by a restart on the same store) */
#endif
#ifndef MAX_REP_CRASH
#define MAX_REP_CRASH 1      /* crashes of the crashing replica (both with -DCRASH_BOTH) */
#endif
#ifndef MAX_DROP
#define MAX_DROP 1           /* lossy disconnects of each replica's connection */
#endif
#ifndef MAX_BAD
#define MAX_BAD 1            /* invalid units, in total */
#endif
#ifndef SCAP
#define SCAP 8               /* server -> replica channel capacity (never reached: asserted) */
#endif
#define CCAP (NU + 1)        /* replica -> server: a HELLO and at most NU PUSHes */
#define RESERVE 3            /* catch-up leaves room for REJECT + ACK + CHANGES */

#define NW(r) (((r) == 0) -> NU : NU1)             /* units replica r writes */
#define NG (NR * NU)                               /* gids; bitmasks fit a byte */
#define MAXINC (1 + MAX_REP_CRASH)                 /* incarnations per replica */

#define BIT(g) (1 << (g))
#define GID(r, k) ((r) * NU + (k))
#define RMASK(r) (((1 << NU) - 1) << ((r) * NU))   /* the units of replica r */
#define OWNER(g) ((g) / NU)
#define HW(r, i) ((r) * MAXINC + (i) - 1)          /* index of hw(replica, incarnation) */
#define KEY(i, s) ((i) * 16 + (s))                 /* "ACK": incarnation << 40 | seq, scaled */

/* Which units may be invalid: by default the first unit of replica 0, so
 * that its transaction follows a rejected unit in the same incarnation. */
#ifdef BAD_ANY
#define MAY_BE_BAD(r, k) 1
#else
#define MAY_BE_BAD(r, k) ((r) == 0 && (k) == 0)
#endif

/* (ext) Transactions: the last unit of each replica is a 2-op transaction.
 * By default replica 0 writes one op then a transaction (3 ops) and
 * replica 1 one transaction (2 ops). -DNO_TXN: every unit is one op. */
#ifdef NO_TXN
#define ULEN(r, k) 1
#else
#define ULEN(r, k) (((k) == NW(r) - 1) -> 2 : 1)
#endif

/* Reachability witnesses (spec/README.md "Witnesses"): -DWITNESS=n turns
 * witness n into an assertion that fails where it is reached. */
#ifndef WITNESS
#define WITNESS 0
#endif
#define REACHED(n) assert(WITNESS != (n))

/* ------------------------------------------------------------------ */
/* Names shared with the C code and docs/PROTOCOL.md                    */
/* ------------------------------------------------------------------ */

/* "Messages" (PING, PONG and BYE are not modelled) */
mtype = { HELLO, WELCOME, PUSH, ACK, REJECT, CHANGES, SYNCED, ERROR };

/* client (replica) session states */
mtype = { WEFT_CS_IDLE, WEFT_CS_HELLO_SENT, WEFT_CS_CATCHING_UP, WEFT_CS_REALTIME, WEFT_CS_FAILED };

/* server session states */
mtype = { WEFT_SS_AWAIT_HELLO, WEFT_SS_CATCHING_UP, WEFT_SS_LIVE, WEFT_SS_CLOSED };

/*
 * Message fields { type, a, b }:
 *   HELLO    a = incarnation, b = cursor position (the epoch never changes here)
 *   WELCOME  -
 *   PUSH     a = the units (bitmask), sent oldest first, i.e. in key order
 *   ACK      a = incarnation, b = seq: the highest identity pushed since the last ACK
 *   REJECT   a = incarnation, b = first seq of the rejected unit
 *   CHANGES  a = the units (bitmask), b = cursor: the position the chunk ends at
 *   SYNCED   b = cursor: the head when catch-up reached it
 *   ERROR    - (never sent: a gap is asserted away, see stage())
 * One connection per replica at a time: c2s[r] and s2c[r].
 */
chan c2s[NR] = [CCAP] of { mtype, byte, byte };
chan s2c[NR] = [SCAP] of { mtype, byte, byte };

/* ------------------------------------------------------------------ */
/* Replica state: volatile, and the durable copy ("d...")               */
/* ------------------------------------------------------------------ */

mtype cs[NR] = WEFT_CS_IDLE; /* client session state */
byte inc[NR] = 1;    /* incarnation: bumped durably at each restart */
byte nextseq[NR] = 1;/* next seq of the current incarnation */
byte nslot[NR];      /* model only: units written so far */
byte oplog[NR];      /* the local oplog: pending (unacknowledged) units */
byte view[NR];       /* units applied to the local documents */
byte cur[NR];        /* the stored cursor (a position) */
byte pushed[NR];     /* units pushed on the current connection */
byte doplog[NR];     /* durable oplog (write-behind: copied at a flush) */
byte dview[NR];      /* durable documents */
byte dcur[NR];       /* durable cursor */
#ifdef BUG_NO_INC_BUMP
byte dnextseq[NR] = 1; /* the seq counter, durable at a flush like the oplog */
#endif

/* the identity of each unit, fixed when it is written */
byte uinc[NG];
byte ufirst[NG];
byte ulast[NG];
bit ubad[NG];        /* invalid: the server rejects it (ext: REJECT) */
byte nbad;

/* ------------------------------------------------------------------ */
/* Server state (src/core/authority.h, src/server/server.c)             */
/* ------------------------------------------------------------------ */

/* durable: the committed log, the hw marks */
byte log[NG];        /* log[i] = gid of the unit at position i + 1 */
byte pos;            /* position of the last committed unit: the head */
byte hw_dur[NR * MAXINC]; /* committed hw(replica, incarnation) */
byte rejdur;         /* units rejected by a committed transaction (recorded by hw alone) */

/* volatile */
byte hw_vol[NR * MAXINC]; /* hw over committed + staged units */
byte staged;         /* units read, not yet committed */
byte sorig;          /* staged units whose pushing connection is still open */
mtype ss[NR] = WEFT_SS_CLOSED; /* server session state */
byte scan[NR];       /* catch-up: position sent so far */
bit ackp[NR];        /* an ACK is due at the next commit point */
byte ackkey[NR];     /* its key: the highest identity pushed since the last ACK */
byte rejq[NR];       /* REJECTs due at the next commit point */
#ifdef FANOUT_BY_INCARNATION
byte sinc[NR];       /* the incarnation the session's HELLO named */
#endif
byte sphase;         /* 1: committed, ACKs not sent yet (SPLIT_COMMIT, BUG_HW_SEPARATE_TXN) */
byte grp;            /* scratch of the commit step: the units it committed */
byte gskip;          /* scratch of the commit step: those pushed by an open connection */

/* ------------------------------------------------------------------ */
/* Faults                                                               */
/* ------------------------------------------------------------------ */

byte nfault;         /* faults so far, all kinds */
byte nsc;            /* server crashes so far */
byte nrc[NR];        /* replica crashes so far */
byte ndrop[NR];      /* disconnects so far */
byte crashable;      /* the replicas that may crash in this run (bitmask) */
#define FAULT_LEFT (nfault < MAX_FAULTS)
#define SRV_CRASH_LEFT (FAULT_LEFT && nsc < MAX_SRV_CRASH)
#define REP_CRASH_LEFT(r) (FAULT_LEFT && ((crashable >> (r)) & 1) && nrc[r] < MAX_REP_CRASH)
#define DROP_LEFT(r) (FAULT_LEFT && ndrop[r] < MAX_DROP && cs[r] != WEFT_CS_IDLE)

/* ------------------------------------------------------------------ */
/* Ghosts, scratch, property tags                                       */
/* ------------------------------------------------------------------ */

byte inlog;          /* ghost: the units in the committed log (a function of log[]) */
byte acked;          /* ghost: units a replica saw ACKed or REJECTed */

/* scratch, only ever used inside one d_step: not part of the state */
hidden mtype tm;
hidden byte ta, tb, tg, tk, tdup;

/* Each assertion starts with its property's tag, so pan's "assertion
 * violated" line names the property. */
hidden byte P0_protocol = 1;      /* no gap; no unexpected message; no overflow */
hidden byte P1_acked_durable = 1; /* ACKed/REJECTed => in the durable state, for good */
hidden byte P2_once = 1;          /* no identity committed twice; rejected never committed */
hidden byte P3_not_stuck = 1;     /* at quiescence: oplogs empty, sessions realtime */
hidden byte P4_delivery = 1;      /* cursor never passes an unapplied unit; convergence */
hidden byte P5_no_phantom = 1;    /* (finding) no replica keeps a rejected unit */

/* P1: unit g is in the server's durable state: in the committed log, or
 * rejected by a committed transaction and covered by the durable hw. */
#define DURABLE(g) (((inlog & BIT(g)) != 0) || \
                    (((rejdur & BIT(g)) != 0) && hw_dur[HW(OWNER(g), uinc[g])] >= ulast[g]))

/* `acked` is only read at a server crash: not kept once none is left */
#define MARK_ACKED(g) if :: SRV_CRASH_LEFT -> acked = acked | BIT(g) :: else fi

/* P1, "and stays there": at a server crash, every unit ever ACKed or
 * REJECTed is still durable. */
inline check_acked_durable() {
	for (tg : 0 .. NG - 1) {
		if
		:: (acked & BIT(tg)) -> assert(P1_acked_durable && DURABLE(tg))
		:: else
		fi
	};
	skip /* keeps the loop's exit inside the d_step */
}

/* P4, safety half: a stored cursor covers only applied units, so resuming
 * from it never skips one. */
inline check_cursor(r) {
	assert(P4_delivery && cur[r] <= pos);
	for (tk : 0 .. NG - 1) {
		if
		:: tk < cur[r] -> assert(P4_delivery && (view[r] & BIT(log[tk])))
		:: else
		fi
	};
	skip
}

#define SEND(r, m, x, y) assert(P0_protocol && len(s2c[r]) < SCAP); s2c[r]!m, x, y

/* ------------------------------------------------------------------ */
/* Disconnects and crashes                                              */
/* ------------------------------------------------------------------ */

/* A lossy disconnect ("Client behaviour" 7): every message in flight on the
 * connection is lost, both ways; both ends see the close at once. Staged
 * units stay staged, but lose their origin (nobody gets their ACK). */
inline drop(r) {
	for (tk : 1 .. CCAP) {
		if
		:: len(c2s[r]) > 0 -> c2s[r]?tm, ta, tb
		:: else
		fi
	};
	for (tk : 1 .. SCAP) {
		if
		:: len(s2c[r]) > 0 -> s2c[r]?tm, ta, tb
		:: else
		fi
	};
	ss[r] = WEFT_SS_CLOSED;
#ifdef FANOUT_BY_INCARNATION
	sinc[r] = 0;
#endif
	scan[r] = 0;
	ackp[r] = 0;
	ackkey[r] = 0;
	rejq[r] = 0;
	sorig = sorig & ~RMASK(r);
	if
	:: cs[r] != WEFT_CS_FAILED -> cs[r] = WEFT_CS_IDLE
	:: else
	fi;
	pushed[r] = 0
}

/* Server crash and restart on the same store ("Sequences", server restart):
 * the committed log, the hw marks and the epoch survive; staged units, the
 * hw of staged units and every connection are lost. */
inline srv_crash() {
	printf("MSC: S crash (staged %d lost)\n", staged);
	if
	:: (staged != 0) -> REACHED(7)
	:: else
	fi;
	if
	:: (inlog & (oplog[0] | oplog[1])) != 0 -> REACHED(8)
	:: else
	fi;
	drop(0);
	drop(1);
	staged = 0;
	sorig = 0;
	for (tk : 0 .. NR * MAXINC - 1) {
		hw_vol[tk] = hw_dur[tk]
	};
	sphase = 0;
	grp = 0;
	gskip = 0;
	check_acked_durable()
}

/* (ext) Replica crash and restart: whatever was not flushed is lost (ops,
 * documents, cursor); the incarnation is bumped durably and seq restarts at
 * 1, so no identity is ever reused. */
inline rep_crash(r) {
	printf("MSC: R%d crash: oplog %d -> %d, cursor %d -> %d\n", r, oplog[r], doplog[r], cur[r], dcur[r]);
	if
	:: dcur[r] < cur[r] -> REACHED(6)
	:: else
	fi;
	drop(r);
	oplog[r] = doplog[r];
	view[r] = dview[r];
	cur[r] = dcur[r];
#ifdef BUG_NO_INC_BUMP
	nextseq[r] = dnextseq[r]    /* BUG: same incarnation, seq from the last flush */
#else
	inc[r] = inc[r] + 1;
	nextseq[r] = 1
#endif
}

/* ------------------------------------------------------------------ */
/* Replica: src/client/sync.c ("Client behaviour")                      */
/* ------------------------------------------------------------------ */

/* A local write (local-first): the unit goes into the oplog and is applied
 * to the local documents at once; both become durable at a later flush. */
inline write(r, bad) {
	tg = GID(r, nslot[r]);
	uinc[tg] = inc[r];
	ufirst[tg] = nextseq[r];
	ulast[tg] = nextseq[r] + ULEN(r, nslot[r]) - 1;
	nextseq[r] = ulast[tg] + 1;
	ubad[tg] = bad;
	nbad = nbad + bad;
	oplog[r] = oplog[r] | BIT(tg);
	view[r] = view[r] | BIT(tg);
	nslot[r]++;
	printf("MSC: R%d write u%d = (inc %d, seq %d..%d), bad %d\n", r, tg, uinc[tg], ufirst[tg], ulast[tg], bad)
}

/*
 * "PUSH": every pending unit not yet pushed on this connection, oldest
 * first (key order). "Client behaviour" 2: after WELCOME, and after every
 * received message and every local write, whatever was written since is
 * pushed too. The push is part of the step that makes it due: a delay
 * before it is the same as a delay of the message in flight.
 */
inline push(r) {
	if
	:: (cs[r] == WEFT_CS_CATCHING_UP || cs[r] == WEFT_CS_REALTIME) && (oplog[r] & ~pushed[r]) != 0 ->
		assert(P0_protocol && len(c2s[r]) < CCAP);
		c2s[r]!PUSH, oplog[r] & ~pushed[r], 0;
		printf("MSC: R%d -> PUSH units %d\n", r, oplog[r] & ~pushed[r]);
		pushed[r] = pushed[r] | oplog[r]
	:: else
	fi
}

inline replica_receive(r) {
	printf("MSC: R%d <- %e %d %d\n", r, tm, ta, tb);
	if
	:: tm == WELCOME ->
		/* "Client behaviour" 2 (the push follows in the same step) */
		assert(P0_protocol && cs[r] == WEFT_CS_HELLO_SENT);
		cs[r] = WEFT_CS_CATCHING_UP
	:: tm == CHANGES ->
		/* "Client behaviour" 4: apply (idempotent), then store the cursor */
		assert(P0_protocol && (cs[r] == WEFT_CS_CATCHING_UP || cs[r] == WEFT_CS_REALTIME));
		if
		:: (ta & RMASK(r) & ~view[r]) != 0 -> REACHED(3)  /* an own unit lost in a crash comes back */
		:: else
		fi;
		view[r] = view[r] | ta;
		cur[r] = tb;
		check_cursor(r)
	:: tm == SYNCED ->
		/* "Client behaviour" 5: catch-up complete */
		assert(P0_protocol && cs[r] == WEFT_CS_CATCHING_UP);
		cur[r] = tb;
		cs[r] = WEFT_CS_REALTIME;
		check_cursor(r)
	:: tm == ACK ->
		/* "ACK", "Client behaviour" 3: drop every pending unit whose key is
		 * <= the ACK's; each was pushed on this connection. */
		assert(P0_protocol && (cs[r] == WEFT_CS_CATCHING_UP || cs[r] == WEFT_CS_REALTIME));
		tk = KEY(ta, tb);
		for (tg : 0 .. NG - 1) {
			if
			:: (oplog[r] & BIT(tg)) && KEY(uinc[tg], ulast[tg]) <= tk ->
				assert(P0_protocol && (pushed[r] & BIT(tg)));
				assert(P1_acked_durable && DURABLE(tg));
				MARK_ACKED(tg);
				oplog[r] = oplog[r] & ~BIT(tg);
				pushed[r] = pushed[r] & ~BIT(tg)
			:: else
			fi
		};
		skip
	:: tm == REJECT ->
		/* (ext) drop the rejected unit, undo its local effect */
		assert(P0_protocol && (cs[r] == WEFT_CS_CATCHING_UP || cs[r] == WEFT_CS_REALTIME));
		for (tg : 0 .. NG - 1) {
			if
			:: (oplog[r] & BIT(tg)) && uinc[tg] == ta && ufirst[tg] == tb ->
				REACHED(4);
				assert(P1_acked_durable && DURABLE(tg) && (inlog & BIT(tg)) == 0);
				MARK_ACKED(tg);
				oplog[r] = oplog[r] & ~BIT(tg);
				pushed[r] = pushed[r] & ~BIT(tg);
				view[r] = view[r] & ~BIT(tg)
			:: else
			fi
		};
		skip
	:: tm == ERROR ->
		/* "ERROR": codes 1-3 are fatal */
		cs[r] = WEFT_CS_FAILED
	:: else -> assert(P0_protocol && false)
	fi
}

active [NR] proctype Replica() {
end_replica:
	do
	:: d_step { nslot[_pid] < NW(_pid) -> write(_pid, 0); push(_pid) }
	:: d_step {
		nslot[_pid] < NW(_pid) && nbad < MAX_BAD && MAY_BE_BAD(_pid, nslot[_pid]) ->
		write(_pid, 1);
		push(_pid)
	   }
	:: d_step {
		/* write-behind flush: oplog, documents and cursor become durable
		 * together; only while a crash of this replica may still come */
		REP_CRASH_LEFT(_pid) &&
		(doplog[_pid] != oplog[_pid] || dview[_pid] != view[_pid] || dcur[_pid] != cur[_pid]) ->
		doplog[_pid] = oplog[_pid];
		dview[_pid] = view[_pid];
		dcur[_pid] = cur[_pid];
#ifdef BUG_NO_INC_BUMP
		dnextseq[_pid] = nextseq[_pid];
#endif
		printf("MSC: R%d flush: oplog %d, cursor %d\n", _pid, oplog[_pid], cur[_pid])
	   }
	:: d_step {
		/* "Client behaviour" 1: connect, HELLO(replica, incarnation, cursor) */
		cs[_pid] == WEFT_CS_IDLE ->
		ss[_pid] = WEFT_SS_AWAIT_HELLO;
		c2s[_pid]!HELLO, inc[_pid], cur[_pid];
		cs[_pid] = WEFT_CS_HELLO_SENT;
		printf("MSC: R%d -> HELLO inc %d cursor %d\n", _pid, inc[_pid], cur[_pid])
	   }
	:: d_step { s2c[_pid]?tm, ta, tb -> replica_receive(_pid); push(_pid) }
	od
}

/* ------------------------------------------------------------------ */
/* Server                                                               */
/* ------------------------------------------------------------------ */

/* "PUSH" (ext): dedupe by hw(replica, incarnation), over committed and
 * staged units from any connection; stage the next unit in sequence, or
 * reject it if invalid (hw still advances); count every unit, duplicates
 * too, toward the connection's next ACK. */
inline stage(r, units) {
	for (tg : 0 .. NG - 1) {
		if
		:: (units & BIT(tg)) ->
			assert(P0_protocol && OWNER(tg) == r);
			tk = HW(r, uinc[tg]);
			tdup = 0;
			if
			:: ulast[tg] <= hw_vol[tk] ->
				tdup = 1;
				/* duplicate: dropped, still counted for the ACK */
				printf("MSC: S dup u%d\n", tg);
				if
				:: (inlog & BIT(tg)) -> REACHED(1)          /* re-push of a committed unit */
				:: (staged & ~sorig & BIT(tg)) -> REACHED(2) /* staged by a closed connection */
				:: else
				fi;
#ifdef FIX_REJECT_RESEND
				if
				:: ubad[tg] -> rejq[r] = rejq[r] | BIT(tg)   /* FIX: REJECT it again */
				:: else
				fi;
#endif
				skip
			:: ufirst[tg] == hw_vol[tk] + 1 ->
				printf("MSC: S stage u%d, bad %d\n", tg, ubad[tg]);
				hw_vol[tk] = ulast[tg];
				staged = staged | BIT(tg);
				sorig = sorig | BIT(tg);
				if
				:: ubad[tg] -> rejq[r] = rejq[r] | BIT(tg)
				:: else
				fi
			:: else ->
				/* a gap, or an overlap with a decided unit: ERROR 1 and
				 * close. A correct replica never causes it. */
				assert(P0_protocol && false)
			fi;
#if defined(BUG_ACK_BEFORE_COMMIT)
			SEND(r, ACK, uinc[tg], ulast[tg])   /* BUG: ACK at once, before the commit */
#elif defined(BUG_DUP_NOT_ACKED)
			if                                   /* BUG: a duplicate gets no ACK */
			:: !tdup && KEY(uinc[tg], ulast[tg]) > ackkey[r] -> ackkey[r] = KEY(uinc[tg], ulast[tg]); ackp[r] = 1
			:: else
			fi
#else
			if
			:: KEY(uinc[tg], ulast[tg]) > ackkey[r] -> ackkey[r] = KEY(uinc[tg], ulast[tg])
			:: else
			fi;
			ackp[r] = 1
#endif
		:: else
		fi
	};
	skip
}

inline server_receive(r) {
	if
	:: tm == HELLO ->
		/* "Cursor and catch-up": from = the cursor if it names a position
		 * of this store (<= the head), else 0 */
		assert(P0_protocol && ss[r] == WEFT_SS_AWAIT_HELLO);
		if
		:: tb <= pos -> scan[r] = tb
		:: else -> scan[r] = 0
		fi;
		SEND(r, WELCOME, 0, 0);
#ifdef FANOUT_BY_INCARNATION
		sinc[r] = ta;
#endif
		ss[r] = WEFT_SS_CATCHING_UP;
		printf("MSC: S <- HELLO from R%d: catch-up from %d\n", r, scan[r])
	:: tm == PUSH ->
		assert(P0_protocol && (ss[r] == WEFT_SS_CATCHING_UP || ss[r] == WEFT_SS_LIVE));
		stage(r, ta)
	:: else -> assert(P0_protocol && false)
	fi
}

/* Group commit ("PUSH", last paragraph; "Guarantees"): one durable
 * transaction holds every staged unit, rejected ones as hw only, and the
 * hw marks; each accepted unit gets the next position. */
inline group_commit() {
	grp = 0;
	for (tg : 0 .. NG - 1) {
		if
		:: (staged & BIT(tg)) ->
			/* P2: each unit is decided once; no identity twice in the log */
			assert(P2_once && (inlog & BIT(tg)) == 0 && (rejdur & BIT(tg)) == 0);
			for (tk : 0 .. NG - 1) {
				if
				:: tk < pos ->
					assert(P2_once && !(OWNER(log[tk]) == OWNER(tg) && uinc[log[tk]] == uinc[tg] &&
					                    ufirst[log[tk]] <= ulast[tg] && ufirst[tg] <= ulast[log[tk]]))
				:: else
				fi
			};
			if
			:: ubad[tg] -> rejdur = rejdur | BIT(tg)
			:: else ->
				log[pos] = tg;
				pos++;
				inlog = inlog | BIT(tg);
				grp = grp | BIT(tg)
			fi
		:: else
		fi
	};
	gskip = staged & sorig;
	printf("MSC: S commit: log + units %d, rejected %d, head %d\n", grp, staged & ~grp, pos);
	staged = 0;
	sorig = 0
}

/* The hw marks, in the same transaction as the units. */
inline persist_hw() {
	for (tk : 0 .. NR * MAXINC - 1) {
		hw_dur[tk] = hw_vol[tk]
	};
	skip
}

/* After the commit: the REJECTs, then the ACK, to each pushing connection. */
inline send_acks() {
	for (ta : 0 .. NR - 1) {
		if
		:: ss[ta] == WEFT_SS_CATCHING_UP || ss[ta] == WEFT_SS_LIVE ->
			for (tg : 0 .. NG - 1) {
				if
				:: (rejq[ta] & BIT(tg)) -> SEND(ta, REJECT, uinc[tg], ufirst[tg])
				:: else
				fi
			};
			if
			:: ackp[ta] -> SEND(ta, ACK, ackkey[ta] / 16, ackkey[ta] % 16)
			:: else
			fi
		:: else
		fi;
		rejq[ta] = 0;
		ackp[ta] = 0;
		ackkey[ta] = 0
	};
	skip
}

/* Then the realtime fan-out ("Realtime fan-out") to every live session:
 * the group's units except those its session already has, with the cursor
 * of the group's end; nothing if that share is empty. A session still
 * catching up gets nothing: its scan reaches these units.
 * Which units a session skips (tk := the mask):
 *   default                 the units pushed on this very connection
 *                           (weft_committed.origin == the connection)
 *   -DFANOUT_BY_INCARNATION the units of the session's (replica, incarnation)
 *   -DFANOUT_BY_REPLICA     every unit of the session's replica (the text of
 *                           PROTOCOL.md v1): violates P4, see README "Findings" */
inline skip_mask(r) {
#if defined(FANOUT_BY_REPLICA)
	tk = RMASK(r)
#elif defined(FANOUT_BY_INCARNATION)
	tk = 0;
	for (tg : 0 .. NG - 1) {
		if
		:: OWNER(tg) == r && uinc[tg] == sinc[r] -> tk = tk | BIT(tg)
		:: else
		fi
	};
	skip
#else
	tk = gskip & RMASK(r)
#endif
}

inline broadcast() {
	for (ta : 0 .. NR - 1) {
		skip_mask(ta);
		tb = grp & ~tk;
		if
		:: ss[ta] == WEFT_SS_CATCHING_UP && grp != 0 -> REACHED(5)
		:: else
		fi;
		if
#ifdef BUG_BROADCAST_DURING_CATCHUP
		:: (ss[ta] == WEFT_SS_LIVE || ss[ta] == WEFT_SS_CATCHING_UP) && tb != 0 ->
#else
		:: ss[ta] == WEFT_SS_LIVE && tb != 0 ->
#endif
			SEND(ta, CHANGES, tb, pos)
		:: else
		fi
	};
	grp = 0;
	gskip = 0
}

/* (ext) Incremental catch-up ("Cursor and catch-up"): one committed unit
 * per CHANGES from the scan position, own units included; at the head,
 * SYNCED(head). Commits can run between two steps. */
inline catch_up(r) {
	if
	:: scan[r] < pos ->
		SEND(r, CHANGES, BIT(log[scan[r]]), scan[r] + 1);
		scan[r]++
	:: else ->
		SEND(r, SYNCED, 0, pos);
		ss[r] = WEFT_SS_LIVE;
		scan[r] = 0
	fi
}

active proctype Server() {
end_server:
	do
	:: d_step { sphase == 0 && len(c2s[0]) > 0 -> c2s[0]?tm, ta, tb; server_receive(0) }
	:: d_step { sphase == 0 && len(c2s[1]) > 0 -> c2s[1]?tm, ta, tb; server_receive(1) }
	:: d_step { sphase == 0 && ss[0] == WEFT_SS_CATCHING_UP && len(s2c[0]) < SCAP - RESERVE -> catch_up(0) }
	:: d_step { sphase == 0 && ss[1] == WEFT_SS_CATCHING_UP && len(s2c[1]) < SCAP - RESERVE -> catch_up(1) }
	:: d_step {
		/* A commit point: something staged, or an ACK/REJECT due. The
		 * commit, the ACKs and the fan-out are one step: a crash between
		 * commit and ACK is the same as a crash right after the ACK was
		 * queued, since a crash loses every message in flight
		 * (spec/README.md, "Reductions"; -DSPLIT_COMMIT makes them two
		 * steps). */
		sphase == 0 && (staged != 0 || ackp[0] || ackp[1] || rejq[0] != 0 || rejq[1] != 0) ->
		group_commit();
#if defined(BUG_HW_SEPARATE_TXN)
		sphase = 1       /* BUG: the hw marks go into a second transaction */
#elif defined(SPLIT_COMMIT)
		persist_hw();
		sphase = 1       /* checks the reduction: ACKs and fan-out in a later step */
#else
		persist_hw();
		send_acks();
		broadcast()
#endif
	   }
#if defined(BUG_HW_SEPARATE_TXN)
	:: d_step { sphase == 1 -> persist_hw(); send_acks(); broadcast(); sphase = 0 }
#elif defined(SPLIT_COMMIT)
	:: d_step { sphase == 1 -> send_acks(); broadcast(); sphase = 0 }
#endif
	od
}

/* ------------------------------------------------------------------ */
/* Environment: faults, then quiescence                                 */
/* ------------------------------------------------------------------ */

/* After a fault, whatever can no longer be read is made canonical so that
 * equal futures merge (spec/README.md, "Reductions"): the durable copy of a
 * replica that cannot crash again, `acked` once no server crash is left,
 * the fault counters once no fault is left. */
inline canon() {
	if
	:: !SRV_CRASH_LEFT -> acked = 0
	:: else
	fi;
	for (tk : 0 .. NR - 1) {
		if
		:: !REP_CRASH_LEFT(tk) ->
			doplog[tk] = 0;
			dview[tk] = 0;
#ifdef BUG_NO_INC_BUMP
			dnextseq[tk] = 0;
#endif
			dcur[tk] = 0
		:: else
		fi
	};
	if
	:: !FAULT_LEFT ->
		nsc = 0;
		crashable = 0;
		for (tk : 0 .. NR - 1) {
			nrc[tk] = 0;
			ndrop[tk] = 0
		}
	:: else
	fi
}

active proctype Env() {
#if MAX_REP_CRASH > 0 && MAX_FAULTS > 0
	/* which replica may crash in this run ("Reductions") */
	if
	:: crashable = 1
	:: crashable = 2
#ifdef CRASH_BOTH
	:: crashable = 3
#endif
	fi;
#endif
end_env:
	do
	:: d_step { SRV_CRASH_LEFT -> nsc++; nfault++; srv_crash(); canon() }
	:: d_step { REP_CRASH_LEFT(0) -> nrc[0]++; nfault++; rep_crash(0); canon() }
	:: d_step { REP_CRASH_LEFT(1) -> nrc[1]++; nfault++; rep_crash(1); canon() }
	:: d_step { DROP_LEFT(0) -> printf("MSC: R0 drop\n"); ndrop[0]++; nfault++; drop(0); canon() }
	:: d_step { DROP_LEFT(1) -> printf("MSC: R1 drop\n"); ndrop[1]++; nfault++; drop(1); canon() }
	:: d_step { FAULT_LEFT -> nfault = MAX_FAULTS; canon() }   /* no more faults */
	od
}

/*
 * Runs only when nothing else can move (timeout): the faults are over and
 * every process is blocked. Every such state must be the good end state, so
 * a deadlock or a stuck replica fails P3 here.
 */
active proctype Quiescence() {
	timeout ->
	d_step {
		assert(P3_not_stuck && staged == 0 && sphase == 0);
		for (ta : 0 .. NR - 1) {
			assert(P3_not_stuck && nslot[ta] == NW(ta));
			assert(P3_not_stuck && oplog[ta] == 0);
			assert(P3_not_stuck && cs[ta] == WEFT_CS_REALTIME && ss[ta] == WEFT_SS_LIVE);
			/* P4: every committed unit is applied, own ones included */
			assert(P4_delivery && (view[ta] & inlog) == inlog);
			/* P4: the cursor covers every unit of the other replica; only
			 * units of this replica's own last groups may lie past it */
			assert(P4_delivery && cur[ta] <= pos);
			for (tk : 0 .. NG - 1) {
				if
				:: tk >= cur[ta] && tk < pos -> assert(P4_delivery && OWNER(log[tk]) == ta)
				:: else
				fi
			};
#ifdef STRICT_CURSOR
			assert(P4_delivery && cur[ta] == pos);
#endif
#ifdef CHECK_REJECT_KNOWN
			/* P5: no replica keeps the effect of a rejected unit */
			assert(P5_no_phantom && (view[ta] & ~inlog) == 0);
#endif
			skip
		};
		skip
	}
}
