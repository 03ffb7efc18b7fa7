#include "threadpool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#elif defined(__aarch64__)
#define CPU_RELAX() __asm__ volatile("yield")
#else
#define CPU_RELAX() ((void)0)
#endif

/* Spins before a waiting thread yields (barrier) or sleeps (idle worker). */
#define SPINS_BEFORE_YIELD 2000
#define SPINS_BEFORE_SLEEP 100000

struct ssdf_pool {
    int n;
    pthread_t *threads;
    int started; /* workers created */
    pid_t pid;   /* process that owns the workers (see ssdf_pool_run) */

    /* The current region. `generation` counts regions; workers run one when
     * it moves past the last one they ran. */
    ssdf_parallel_fn fn;
    void *ctx;
    atomic_uint generation;
    atomic_int pending; /* workers still running the region */
    atomic_int stop;

    /* Idle workers sleep here. */
    pthread_mutex_t lock;
    pthread_cond_t wake;
    atomic_int sleepers;

    /* Sense-reversing barrier. */
    atomic_int arrived;
    atomic_uint sense;
};

typedef struct {
    ssdf_pool *pool;
    int index;
} worker_arg;

static void spin_wait(int *spins) {
    if (++*spins < SPINS_BEFORE_YIELD)
        CPU_RELAX();
    else
        sched_yield(); /* more threads than free cores: let the others run */
}

static void *worker_main(void *p) {
    worker_arg *arg = p;
    ssdf_pool *pool = arg->pool;
    const int index = arg->index;
    unsigned seen = 0;
    free(arg);
    for (;;) {
        int spins = 0;
        unsigned gen;
        while ((gen = atomic_load_explicit(&pool->generation, memory_order_acquire)) == seen &&
               !atomic_load(&pool->stop)) {
            if (++spins < SPINS_BEFORE_SLEEP) {
                CPU_RELAX();
                continue;
            }
            pthread_mutex_lock(&pool->lock);
            atomic_fetch_add(&pool->sleepers, 1);
            while (atomic_load(&pool->generation) == seen && !atomic_load(&pool->stop))
                pthread_cond_wait(&pool->wake, &pool->lock);
            atomic_fetch_sub(&pool->sleepers, 1);
            pthread_mutex_unlock(&pool->lock);
            spins = 0;
        }
        if (atomic_load(&pool->stop)) return NULL;
        seen = gen;
        pool->fn(pool->ctx, index, pool->n);
        atomic_fetch_sub_explicit(&pool->pending, 1, memory_order_release);
    }
}

/* Stop and join the workers this process started. */
static void stop_workers(ssdf_pool *pool) {
    pthread_mutex_lock(&pool->lock);
    atomic_store(&pool->stop, 1);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->lock);
    for (int i = 0; i < pool->started; i++) pthread_join(pool->threads[i], NULL);
    pool->started = 0;
}

/* (Re)initialise the synchronisation state and start the n - 1 workers, all
 * or nothing: when one cannot be started, those already running are stopped
 * and the pool is left as it was, owned by no process of this pid, so the
 * next run tries again instead of waiting for workers that do not exist. */
static int start_workers(ssdf_pool *pool) {
    pool->started = 0;
    atomic_store(&pool->generation, 0);
    atomic_store(&pool->pending, 0);
    atomic_store(&pool->stop, 0);
    atomic_store(&pool->sleepers, 0);
    atomic_store(&pool->arrived, 0);
    atomic_store(&pool->sense, 0);
    /* In a forked child the copies may be held by threads that do not exist
     * here: initialise them anew. */
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->wake, NULL);
    for (int i = 1; i < pool->n; i++) {
        worker_arg *arg = malloc(sizeof *arg);
        int rc = -1;
        if (arg) {
            *arg = (worker_arg){pool, i};
            rc = pthread_create(&pool->threads[i - 1], NULL, worker_main, arg);
        }
        if (rc != 0) {
            free(arg);
            stop_workers(pool);
            pthread_cond_destroy(&pool->wake);
            pthread_mutex_destroy(&pool->lock);
            return -1;
        }
        pool->started++;
    }
    pool->pid = getpid();
    return 0;
}

ssdf_pool *ssdf_pool_create(int nthreads) {
    ssdf_pool *pool = calloc(1, sizeof *pool);
    if (!pool || nthreads < 1) {
        free(pool);
        return NULL;
    }
    pool->n = nthreads;
    if (nthreads > 1 && !(pool->threads = calloc((size_t)nthreads - 1, sizeof(pthread_t)))) {
        free(pool);
        return NULL;
    }
    if (start_workers(pool) != 0) {
        free(pool->threads);
        free(pool);
        return NULL;
    }
    return pool;
}

void ssdf_pool_destroy(ssdf_pool *pool) {
    if (!pool) return;
    /* A forked child that never ran owns no workers, and the copied mutex
     * may be held: only the owning process stops and joins. */
    if (pool->pid == getpid()) {
        stop_workers(pool);
        pthread_cond_destroy(&pool->wake);
        pthread_mutex_destroy(&pool->lock);
    }
    free(pool->threads);
    free(pool);
}

int ssdf_pool_threads(const ssdf_pool *pool) { return pool->n; }

int ssdf_pool_run(ssdf_pool *pool, ssdf_parallel_fn fn, void *ctx) {
    if (pool->n == 1) {
        fn(ctx, 0, 1);
        return 0;
    }
    /* After fork() the child has this pool but none of its worker threads
     * (and maybe a copy of a held mutex): start a new set, or the region
     * would wait for workers that do not exist. If that fails, nothing ran
     * and the next call tries again. */
    if (pool->pid != getpid() && start_workers(pool) != 0) return -1;
    pool->fn = fn;
    pool->ctx = ctx;
    atomic_store(&pool->pending, pool->n - 1);
    /* seq_cst, paired with the sleepers count: a worker going to sleep either
     * sees the new generation or is counted and woken. */
    atomic_fetch_add(&pool->generation, 1);
    if (atomic_load(&pool->sleepers) > 0) {
        pthread_mutex_lock(&pool->lock);
        pthread_cond_broadcast(&pool->wake);
        pthread_mutex_unlock(&pool->lock);
    }
    fn(ctx, 0, pool->n);
    int spins = 0;
    while (atomic_load_explicit(&pool->pending, memory_order_acquire) > 0) spin_wait(&spins);
    return 0;
}

void ssdf_pool_barrier(ssdf_pool *pool) {
    if (pool->n == 1) return;
    const unsigned sense = atomic_load_explicit(&pool->sense, memory_order_relaxed);
    if (atomic_fetch_add_explicit(&pool->arrived, 1, memory_order_acq_rel) == pool->n - 1) {
        atomic_store_explicit(&pool->arrived, 0, memory_order_relaxed);
        atomic_store_explicit(&pool->sense, sense + 1, memory_order_release);
        return;
    }
    int spins = 0;
    while (atomic_load_explicit(&pool->sense, memory_order_acquire) == sense) spin_wait(&spins);
}
