/* Raw MPI all-reduce bandwidth, the reference for bench/ddp.ts: MPI_Allreduce (sum, float32, in place) over
 * the same message sizes, warm-up then timed repetitions; prints one JSON line per size:
 * {"bytes": ..., "us": median microseconds per call}. Build: mpicc -O2 bench/ddp_allreduce.c -o ddp_allreduce */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

static int cmp(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  const long sizes[] = {1024, 16384, 262144, 1048576, 4194304};
  for (unsigned s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
    long n = sizes[s];
    float* buf = malloc(n * sizeof(float));
    for (long i = 0; i < n; i++) buf[i] = (float)(i % 7);
    int reps = n >= 1048576 ? 10 : 50;
    double* t = malloc(reps * sizeof(double));
    for (int w = 0; w < 3; w++) MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    for (int r = 0; r < reps; r++) {
      MPI_Barrier(MPI_COMM_WORLD);
      double t0 = MPI_Wtime();
      MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
      t[r] = MPI_Wtime() - t0;
    }
    qsort(t, reps, sizeof(double), cmp);
    if (rank == 0) printf("{\"bytes\": %ld, \"us\": %.2f}\n", n * 4, t[reps / 2] * 1e6);
    fflush(stdout);
    free(buf);
    free(t);
  }
  MPI_Finalize();
  return 0;
}
