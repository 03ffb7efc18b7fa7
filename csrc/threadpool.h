/* A persistent thread pool for one engine: `n - 1` worker threads plus the
 * calling thread. ssdf_pool_run runs one function on all n threads at once
 * (a parallel region); inside it ssdf_pool_barrier synchronises them. Workers
 * spin briefly between regions, then sleep, so back-to-back inferences pay no
 * wake-up and an idle pool costs no CPU. */
#ifndef SSDF_THREADPOOL_H
#define SSDF_THREADPOOL_H

typedef struct ssdf_pool ssdf_pool;

/* fn(ctx, thread, nthreads), thread 0 being the caller. */
typedef void (*ssdf_parallel_fn)(void *ctx, int thread, int nthreads);

/* NULL on failure (out of memory or threads). */
ssdf_pool *ssdf_pool_create(int nthreads);
void ssdf_pool_destroy(ssdf_pool *pool);
int ssdf_pool_threads(const ssdf_pool *pool);

/* Run fn on every thread and return 0 when all are done. Not reentrant: one
 * region at a time per pool. In a child process after fork() the workers are
 * restarted first, all or nothing; -1 if that fails (fn did not run, and
 * the next call tries again). */
int ssdf_pool_run(ssdf_pool *pool, ssdf_parallel_fn fn, void *ctx);

/* Wait until every thread of the region has reached this barrier. */
void ssdf_pool_barrier(ssdf_pool *pool);

#endif
