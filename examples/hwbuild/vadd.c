/* hwbuild-vadd: add two vectors with an OpenCL kernel and check the sums.
 * Prints the device it ran on; exits 0 on success, 1 on a wrong sum or an
 * OpenCL error, 77 when there is no OpenCL device at all. */
#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>
#include <stdio.h>

#define N 1024

static const char *source =
    "__kernel void vadd(__global const float *a, __global const float *b,\n"
    "                   __global float *c) {\n"
    "    size_t i = get_global_id(0);\n"
    "    c[i] = a[i] + b[i];\n"
    "}\n";

static int fail(const char *what, cl_int err)
{
    fprintf(stderr, "hwbuild-vadd: %s failed (OpenCL error %d)\n", what, (int)err);
    return 1;
}

int main(void)
{
    cl_platform_id platform;
    cl_device_id device;
    cl_uint n = 0;
    cl_int err;
    float a[N], b[N], c[N];
    char name[256] = "", pname[256] = "";

    err = clGetPlatformIDs(1, &platform, &n);
    if (err != CL_SUCCESS || n == 0) {
        fprintf(stderr, "hwbuild-vadd: no OpenCL platform\n");
        return 77;
    }
    err = clGetDeviceIDs(platform, CL_DEVICE_TYPE_ALL, 1, &device, &n);
    if (err != CL_SUCCESS || n == 0) {
        fprintf(stderr, "hwbuild-vadd: no OpenCL device\n");
        return 77;
    }
    clGetPlatformInfo(platform, CL_PLATFORM_NAME, sizeof pname - 1, pname, NULL);
    clGetDeviceInfo(device, CL_DEVICE_NAME, sizeof name - 1, name, NULL);
    for (int i = 0; i < N; i++) {
        a[i] = (float)i;
        b[i] = (float)(2 * i);
    }
    cl_context ctx = clCreateContext(NULL, 1, &device, NULL, NULL, &err);
    if (err != CL_SUCCESS)
        return fail("clCreateContext", err);
    cl_command_queue q = clCreateCommandQueue(ctx, device, 0, &err);
    if (err != CL_SUCCESS)
        return fail("clCreateCommandQueue", err);
    cl_program prog = clCreateProgramWithSource(ctx, 1, &source, NULL, &err);
    if (err != CL_SUCCESS)
        return fail("clCreateProgramWithSource", err);
    err = clBuildProgram(prog, 1, &device, NULL, NULL, NULL);
    if (err != CL_SUCCESS)
        return fail("clBuildProgram", err);
    cl_kernel k = clCreateKernel(prog, "vadd", &err);
    if (err != CL_SUCCESS)
        return fail("clCreateKernel", err);
    cl_mem da = clCreateBuffer(ctx, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, sizeof a, a, &err);
    cl_mem db = clCreateBuffer(ctx, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, sizeof b, b, &err);
    cl_mem dc = clCreateBuffer(ctx, CL_MEM_WRITE_ONLY, sizeof c, NULL, &err);
    if (err != CL_SUCCESS)
        return fail("clCreateBuffer", err);
    clSetKernelArg(k, 0, sizeof da, &da);
    clSetKernelArg(k, 1, sizeof db, &db);
    clSetKernelArg(k, 2, sizeof dc, &dc);
    size_t global = N;
    err = clEnqueueNDRangeKernel(q, k, 1, NULL, &global, NULL, 0, NULL, NULL);
    if (err != CL_SUCCESS)
        return fail("clEnqueueNDRangeKernel", err);
    err = clEnqueueReadBuffer(q, dc, CL_TRUE, 0, sizeof c, c, 0, NULL, NULL);
    if (err != CL_SUCCESS)
        return fail("clEnqueueReadBuffer", err);
    for (int i = 0; i < N; i++) {
        if (c[i] != (float)(3 * i)) {
            fprintf(stderr, "hwbuild-vadd: c[%d] = %g, expected %d\n", i, c[i], 3 * i);
            return 1;
        }
    }
    printf("hwbuild-vadd: %d sums correct on OpenCL device '%s' (%s)\n", N, name, pname);
    clReleaseMemObject(da);
    clReleaseMemObject(db);
    clReleaseMemObject(dc);
    clReleaseKernel(k);
    clReleaseProgram(prog);
    clReleaseCommandQueue(q);
    clReleaseContext(ctx);
    return 0;
}
