/* numpy.c — zero-copy exchange with NumPy through its C API (builds against 1.24 and 2.x).
 *
 * Tensor.numpy() returns an ndarray viewing the tensor's memory whose base is the Storage,
 * so the data stays valid after the tensor is gone.  from_numpy(arr) wraps the array's
 * memory in a Storage that holds a reference to the array.  This is the only file that
 * uses the NumPy C API (import_array happens in so_register_numpy).
 */
#include "interop.h"
#include <numpy/arrayobject.h>

static int dtype_to_npy(int dt)
{
    switch (dt) {
    case SO_FLOAT32: return NPY_FLOAT32;
    case SO_FLOAT64: return NPY_FLOAT64;
    case SO_FLOAT16: return NPY_FLOAT16;
    case SO_INT32: return NPY_INT32;
    case SO_INT64: return NPY_INT64;
    case SO_BOOL: return NPY_BOOL;
    case SO_COMPLEX64: return NPY_COMPLEX64;
    case SO_COMPLEX128: return NPY_COMPLEX128;
    default: return -1; /* bfloat16 has no NumPy type */
    }
}

static int npy_to_dtype(int npy)
{
    switch (npy) {
    case NPY_FLOAT32: return SO_FLOAT32;
    case NPY_FLOAT64: return SO_FLOAT64;
    case NPY_FLOAT16: return SO_FLOAT16;
    case NPY_INT32: return SO_INT32;
    case NPY_BOOL: return SO_BOOL;
    case NPY_COMPLEX64: return SO_COMPLEX64;
    case NPY_COMPLEX128: return SO_COMPLEX128;
    default:
        /* NPY_INT64 and NPY_LONGLONG / NPY_LONG may be distinct type numbers */
        if (npy == NPY_INT64 || npy == NPY_LONG || npy == NPY_LONGLONG) return SO_INT64;
        return -1;
    }
}

/* Tensor.numpy(force=False) */
PyObject *so_t_numpy(PyObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"force", NULL};
    SoTensor *t = (SoTensor *)self;
    int force = 0, npy;
    npy_intp dims[SO_MAX_DIMS], strides[SO_MAX_DIMS];
    PyArray_Descr *descr;
    PyObject *arr;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|p:numpy", kwlist, &force)) return NULL;
    if (so_tensor_device(t).type == SO_META && !force)
        return PyErr_Format(PyExc_TypeError, "can't convert meta device type tensor to numpy. Use "
                            "Tensor.cpu() to copy the tensor to host memory first.");
    if (so_tensor_device(t).type != SO_CPU) {
        if (!force)
            return PyErr_Format(PyExc_TypeError,
                                "can't convert cuda:%d device type tensor to numpy. Use "
                                "Tensor.cpu() to copy the tensor to host memory first.",
                                so_tensor_device(t).index);
        {
            PyObject *host = PyObject_CallMethod(self, "cpu", NULL), *res;
            if (!host) return NULL;
            res = so_t_numpy(host, args, kwds);
            Py_DECREF(host);
            return res;
        }
    }
    if (t->requires_grad && !force)
        return PyErr_Format(PyExc_RuntimeError,
                            "Can't call numpy() on Tensor that requires grad. Use "
                            "tensor.detach().numpy() instead.");
    npy = dtype_to_npy(t->dtype);
    if (npy < 0)
        return PyErr_Format(PyExc_TypeError, "Got unsupported ScalarType BFloat16");
    for (int i = 0; i < t->ndim; i++) {
        dims[i] = (npy_intp)t->shape[i];
        strides[i] = (npy_intp)(t->strides[i] * so_dtype_itemsize(t->dtype));
    }
    descr = PyArray_DescrFromType(npy);
    if (!descr) return NULL;
    arr = PyArray_NewFromDescr(&PyArray_Type, descr, t->ndim, dims, strides, so_tensor_data(t),
                               NPY_ARRAY_WRITEABLE | NPY_ARRAY_ALIGNED, NULL);
    if (!arr) return NULL;
    if (PyArray_SetBaseObject((PyArrayObject *)arr, Py_NewRef((PyObject *)t->storage)) < 0) {
        Py_DECREF(arr);
        return NULL;
    }
    return arr;
}

/* _C.from_numpy(ndarray) -> Tensor sharing memory */
static PyObject *py_from_numpy(PyObject *m, PyObject *obj)
{
    so_state *st = so_state_from_module(m);
    PyArrayObject *arr;
    int dt, nd, itemsize;
    int64_t shape[SO_MAX_DIMS], strides[SO_MAX_DIMS];
    int64_t hi = 0; /* element offset of the highest element from data (strides are >= 0) */
    SoStorage *storage;
    SoTensor *t;
    so_device cpu = {SO_CPU, 0};
    if (!PyArray_Check(obj))
        return PyErr_Format(PyExc_TypeError, "expected np.ndarray (got %s)", Py_TYPE(obj)->tp_name);
    arr = (PyArrayObject *)obj;
    dt = npy_to_dtype(PyArray_TYPE(arr));
    if (dt < 0 || !PyArray_ISNOTSWAPPED(arr)) {
        /* %S of the dtype (its str), e.g. "complex128" or ">f4" */
        PyObject *tn = PyObject_Str((PyObject *)PyArray_DESCR(arr));
        PyObject *r = PyErr_Format(PyExc_TypeError,
                                   "can't convert np.ndarray of type %S. The only supported types "
                                   "are: float64, float32, float16, int64, int32, and bool (native "
                                   "byte order).", tn ? tn : Py_None);
        Py_XDECREF(tn);
        return r;
    }
    nd = PyArray_NDIM(arr);
    if (nd > SO_MAX_DIMS)
        return PyErr_Format(PyExc_ValueError,
                            "at most %d dimensions are supported, got %d", SO_MAX_DIMS, nd);
    itemsize = so_dtype_itemsize(dt);
    for (int i = 0; i < nd; i++) {
        npy_intp s = PyArray_STRIDES(arr)[i];
        shape[i] = PyArray_DIMS(arr)[i];
        if (s < 0)
            return PyErr_Format(PyExc_ValueError,
                                "At least one stride in the given numpy array is negative, and "
                                "tensors with negative strides are not currently supported. (You "
                                "can probably work around this by making a copy of your array  "
                                "with array.copy().) ");
        if (s % itemsize != 0)
            return PyErr_Format(PyExc_ValueError,
                                "given numpy array strides not a multiple of the element byte "
                                "size. Copy the numpy array to reallocate the memory.");
        strides[i] = s / itemsize;
        if (shape[i] > 0) hi += (shape[i] - 1) * strides[i];
    }
    if (!PyArray_ISALIGNED(arr))
        return PyErr_Format(PyExc_ValueError, "from_numpy: the array's data is not aligned");
    storage = so_storage_wrap_owner(st, cpu, PyArray_DATA(arr),
                                    PyArray_SIZE(arr) ? (hi + 1) * itemsize : 0, obj);
    if (!storage) return NULL;
    t = so_tensor_from_storage(st, storage, 0, nd, shape, strides, dt);
    Py_DECREF(storage);
    return (PyObject *)t;
}

static PyMethodDef numpy_functions[] = {
    {"from_numpy", py_from_numpy, METH_O,
     "from_numpy(ndarray): a CPU tensor sharing the array's memory"},
    {NULL}};

int so_register_numpy(PyObject *m, so_state *st)
{
    if (_import_array() < 0)
        return so_fail(PyExc_ImportError, "shardopt._C could not import the NumPy C API");
    (void)st;
    return PyModule_AddFunctions(m, numpy_functions);
}
