/*
 * A workload for perf in the Linux guest, with one known hot function.
 *
 *   workload [ITERATIONS [COLD]]
 *
 * hot_loop() runs ITERATIONS rounds of a xorshift step (6 instructions a
 * round at -O2: three EORs with shifted operands, a counter, a compare and
 * a branch); cold_setup() runs COLD rounds of a Fibonacci-like loop (also
 * 6 instructions a round) before it. The defaults, 200000 and 2000, make
 * about 1.2 million instructions in hot_loop and 12 thousand in
 * cold_setup: hot_loop is about 99% of the user time, and the run is short
 * enough to trace instruction by instruction. It prints the result, so
 * that neither loop can be optimised away.
 *
 * Freestanding and static (no libc: the cross compiler needs no arm64 libc
 * headers, and the binary needs no dynamic loader): _start, system calls
 * by `svc #0`, and a symbol table (not stripped) for perf report.
 */
typedef unsigned long u64;

static long sys3(long nr, long a, long b, long c)
{
	register long x8 __asm__("x8") = nr;
	register long x0 __asm__("x0") = a;
	register long x1 __asm__("x1") = b;
	register long x2 __asm__("x2") = c;
	__asm__ volatile("svc #0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2) : "memory");
	return x0;
}

#define SYS_write 64
#define SYS_exit_group 94

static u64 parse(const char *s, u64 dflt)
{
	u64 v = 0;
	if (!s || !*s)
		return dflt;
	for (; *s >= '0' && *s <= '9'; s++)
		v = v * 10 + (u64)(*s - '0');
	return v;
}

static void put_line(const char *label, u64 v)
{
	char buf[64];
	int n = 0, i;
	char digits[20];
	int d = 0;

	while (label[n] && n < 40) {
		buf[n] = label[n];
		n++;
	}
	do {
		digits[d++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	for (i = d - 1; i >= 0; i--)
		buf[n++] = digits[i];
	buf[n++] = '\n';
	sys3(SYS_write, 1, (long)buf, n);
}

/* The cold part: a little setup work with another shape of loop. */
__attribute__((noinline)) u64 cold_setup(u64 n)
{
	u64 a = 1, b = 1;

	for (u64 i = 0; i < n; i++) {
		u64 t = a + b;
		a = b;
		b = t ^ (i << 3);
		__asm__ volatile("" : "+r"(b));
	}
	return a ^ b;
}

/* The hot part: a xorshift64 generator, one step a round. */
__attribute__((noinline)) u64 hot_loop(u64 n, u64 x)
{
	for (u64 i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		__asm__ volatile("" : "+r"(x));
	}
	return x;
}

__attribute__((noreturn, used)) void start_c(long *sp)
{
	long argc = sp[0];
	char **argv = (char **)(sp + 1);
	u64 iterations = parse(argc > 1 ? argv[1] : 0, 200000);
	u64 cold = parse(argc > 2 ? argv[2] : 0, 2000);
	u64 seed = cold_setup(cold) | 1;
	u64 r = hot_loop(iterations, seed);

	put_line("workload: iterations=", iterations);
	put_line("workload: result=", r);
	sys3(SYS_exit_group, 0, 0, 0);
	__builtin_unreachable();
}

/* The kernel enters with sp at argc, argv[], NULL, envp[]. */
__asm__(".text\n"
	".globl _start\n"
	".type _start, %function\n"
	"_start:\n"
	"	mov x29, #0\n"
	"	mov x30, #0\n"
	"	mov x0, sp\n"
	"	b start_c\n"
	".size _start, . - _start\n");
