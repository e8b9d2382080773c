// llmkit's own binding of ONNX Runtime (C API only): sessions, tensors that stay where they were allocated
// (host memory a caller owns, or device memory allocated once), I/O binding, and runs as Node-API async work.
// onnxruntime-node has no I/O binding: every output comes back as a fresh copy, a KV cache included.
//
// The library is the one onnxruntime-node ships, opened with dlopen at init() and entered through
// OrtGetApiBase, so the process maps one copy of it and the addon is tied to no release at build time.
#include <dlfcn.h>
#include <node_api.h>

#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "onnxruntime/onnxruntime_c_api.h"

namespace {

const OrtApi* ort = nullptr;
OrtEnv* env = nullptr;
// cudaMemcpy of the CUDA runtime the CUDA provider loaded: reading and writing device tensors from the host.
using CudaMemcpy = int (*)(void*, const void*, size_t, int);
using CudaSync = int (*)();
CudaMemcpy cudaMemcpyFn = nullptr;
CudaSync cudaSyncFn = nullptr;

struct JsError {
  std::string message;
};

// Every ORT call goes through here: a failure becomes a C++ exception, and each entry point turns it into a JS error.
void check(OrtStatus* status) {
  if (!status) return;
  std::string message = ort->GetErrorMessage(status);
  ort->ReleaseStatus(status);
  throw JsError{message};
}

void checkNapi(napi_status status, const char* what) {
  if (status != napi_ok) throw JsError{std::string("Node-API: ") + what};
}

// ---- small Node-API helpers -------------------------------------------------------------------------------

std::string stringOf(napi_env e, napi_value v) {
  size_t length = 0;
  checkNapi(napi_get_value_string_utf8(e, v, nullptr, 0, &length), "expected a string");
  std::string s(length, '\0');
  checkNapi(napi_get_value_string_utf8(e, v, s.data(), length + 1, &length), "expected a string");
  return s;
}

napi_value property(napi_env e, napi_value object, const char* name) {
  napi_value v;
  checkNapi(napi_get_named_property(e, object, name, &v), name);
  return v;
}

bool isUndefined(napi_env e, napi_value v) {
  napi_valuetype t;
  napi_typeof(e, v, &t);
  return t == napi_undefined || t == napi_null;
}

std::map<std::string, std::string> stringMap(napi_env e, napi_value object) {
  std::map<std::string, std::string> out;
  if (isUndefined(e, object)) return out;
  napi_value keys;
  uint32_t count;
  checkNapi(napi_get_property_names(e, object, &keys), "expected an object");
  napi_get_array_length(e, keys, &count);
  for (uint32_t i = 0; i < count; i++) {
    napi_value key;
    napi_get_element(e, keys, i, &key);
    napi_value value;
    napi_get_property(e, object, key, &value);
    napi_value text;
    napi_coerce_to_string(e, value, &text);
    out[stringOf(e, key)] = stringOf(e, text);
  }
  return out;
}

std::vector<int64_t> shapeOf(napi_env e, napi_value array) {
  uint32_t count;
  checkNapi(napi_get_array_length(e, array, &count), "a shape is an array of integers");
  std::vector<int64_t> shape(count);
  for (uint32_t i = 0; i < count; i++) {
    napi_value v;
    napi_get_element(e, array, i, &v);
    checkNapi(napi_get_value_int64(e, v, &shape[i]), "a shape is an array of integers");
  }
  return shape;
}

napi_value stringArray(napi_env e, const std::vector<std::string>& items) {
  napi_value array;
  napi_create_array_with_length(e, items.size(), &array);
  for (size_t i = 0; i < items.size(); i++) {
    napi_value s;
    napi_create_string_utf8(e, items[i].c_str(), items[i].size(), &s);
    napi_set_element(e, array, i, s);
  }
  return array;
}

struct TypedArray {
  void* data;
  size_t bytes;
  napi_typedarray_type type;
};

TypedArray typedArrayOf(napi_env e, napi_value v) {
  bool is;
  napi_is_typedarray(e, v, &is);
  if (!is) throw JsError{"expected a typed array"};
  TypedArray t{};
  size_t length;
  napi_value buffer;
  size_t offset;
  checkNapi(napi_get_typedarray_info(e, v, &t.type, &length, &t.data, &buffer, &offset), "typed array");
  size_t element = (t.type == napi_float64_array || t.type == napi_bigint64_array || t.type == napi_biguint64_array) ? 8
                   : (t.type == napi_float32_array || t.type == napi_int32_array || t.type == napi_uint32_array) ? 4
                   : (t.type == napi_int16_array || t.type == napi_uint16_array) ? 2
                                                                                 : 1;
  t.bytes = length * element;
  return t;
}

struct ElementType {
  const char* name;
  ONNXTensorElementDataType onnx;
  size_t bytes;
};
const ElementType ELEMENT_TYPES[] = {
    {"float32", ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, 4}, {"float16", ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16, 2},
    {"int64", ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64, 8},   {"int32", ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32, 4},
    {"int8", ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8, 1},     {"uint8", ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8, 1},
    {"bool", ONNX_TENSOR_ELEMENT_DATA_TYPE_BOOL, 1},
};

const ElementType& elementType(const std::string& name) {
  for (const auto& t : ELEMENT_TYPES)
    if (name == t.name) return t;
  throw JsError{"unknown tensor type " + name};
}

size_t elementCount(const std::vector<int64_t>& shape) {
  size_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) throw JsError{"a tensor's dimensions must be ≥ 0"};
    n *= static_cast<size_t>(d);
  }
  return n;
}

// Wraps a C++ object in a JS object; the finalizer deletes it when the JS object is collected.
// What a collected object's finalizer does: delete it (a session may have to outlive its JS object, see Session).
template <typename T>
void finalize(T* native) {
  delete native;
}

template <typename T>
napi_value wrapped(napi_env e, T* native) {
  napi_value object;
  napi_create_object(e, &object);
  napi_wrap(
      e, object, native, [](napi_env fe, void* data, void*) { finalize(static_cast<T*>(data)); }, nullptr, nullptr);
  return object;
}

template <typename T>
T* unwrapped(napi_env e, napi_value object) {
  void* native = nullptr;
  if (napi_unwrap(e, object, &native) != napi_ok || !native) throw JsError{"not a binding object"};
  return static_cast<T*>(native);
}

// A strong reference that keeps a JS object (and what it wraps) alive, dropped with its holder.
struct Keep {
  napi_env e = nullptr;
  napi_ref ref = nullptr;
  Keep() = default;
  Keep(napi_env env_, napi_value v) : e(env_) { napi_create_reference(e, v, 1, &ref); }
  Keep(const Keep&) = delete;
  Keep& operator=(const Keep&) = delete;
  Keep(Keep&& other) noexcept : e(other.e), ref(other.ref) { other.ref = nullptr; }
  Keep& operator=(Keep&& other) noexcept {
    drop();
    e = other.e;
    ref = other.ref;
    other.ref = nullptr;
    return *this;
  }
  void drop() {
    if (ref) napi_delete_reference(e, ref);
    ref = nullptr;
  }
  ~Keep() { drop(); }
};

// ---- the objects ------------------------------------------------------------------------------------------

struct Session {
  OrtSession* session = nullptr;
  OrtAllocator* deviceAllocator = nullptr;
  OrtMemoryInfo* deviceMemory = nullptr;
  bool cuda = false;
  // Device tensors allocated from deviceAllocator and not freed yet: the allocator, and the session it belongs to,
  // must outlive them whatever order release() and the finalizers come in (at exit they come in any order).
  int deviceValues = 0;
  bool released = false;   // release() was called
  bool collected = false;  // its JS object was finalized: the last device tensor deletes it
  ~Session() { free(); }
  void release() {
    released = true;
    if (deviceValues == 0) free();
  }
  void free() {
    if (deviceAllocator) ort->ReleaseAllocator(deviceAllocator);
    if (deviceMemory) ort->ReleaseMemoryInfo(deviceMemory);
    if (session) ort->ReleaseSession(session);
    deviceAllocator = nullptr;
    deviceMemory = nullptr;
    session = nullptr;
  }
  OrtSession* live() const {
    if (!session || released) throw JsError{"the session was released"};
    return session;
  }
};

void finalize(Session* s) {
  s->collected = true;
  s->released = true;
  if (s->deviceValues == 0) delete s;
}

// A tensor: over a JS typed array's memory (host), or over device memory allocated once by ORT.
struct Value {
  OrtValue* value = nullptr;
  void* data = nullptr;
  size_t bytes = 0;
  size_t elementBytes = 0;
  bool device = false;
  Keep memoryOwner;  // the typed array, or the session (its allocator) or the value this one is a view of
  Session* allocatedBy = nullptr;  // a device tensor's session (see Session::deviceValues)
  ~Value() {
    if (value) ort->ReleaseValue(value);
    if (!allocatedBy || --allocatedBy->deviceValues > 0) return;
    if (allocatedBy->collected) {
      delete allocatedBy;
    } else if (allocatedBy->released) {
      allocatedBy->free();
    }
  }
};

struct Binding {
  OrtIoBinding* binding = nullptr;
  Keep session;
  std::map<std::string, Keep> bound;  // the values bound, kept alive while bound
  bool running = false;
  // The run options of the run in progress: terminate() sets their flag, and ONNX Runtime stops before its next node.
  OrtRunOptions* runOptions = nullptr;
  ~Binding() {
    if (binding) ort->ReleaseIoBinding(binding);
  }
};

// ---- entry points -----------------------------------------------------------------------------------------

#define ENTRY(name) napi_value name(napi_env e, napi_callback_info info)

struct Args {
  napi_value self;
  napi_value argv[4];
  size_t argc = 4;
  Args(napi_env e, napi_callback_info info) {
    for (auto& a : argv) a = nullptr;
    napi_get_cb_info(e, info, &argc, argv, &self, nullptr);
    napi_value undefined;
    napi_get_undefined(e, &undefined);
    for (size_t i = argc; i < 4; i++) argv[i] = undefined;
  }
};

template <typename F>
napi_value guarded(napi_env e, F body) {
  try {
    return body();
  } catch (const JsError& error) {
    napi_throw_error(e, nullptr, error.message.c_str());
    return nullptr;
  }
}

napi_value undefinedValue(napi_env e) {
  napi_value u;
  napi_get_undefined(e, &u);
  return u;
}

void requireInit() {
  if (!ort) throw JsError{"call init() first"};
}

void* openCudaRuntime() {
  for (const char* name : {"libcudart.so.13", "libcudart.so.12"}) {
    if (void* h = dlopen(name, RTLD_NOW | RTLD_NOLOAD)) return h;
  }
  for (const char* name : {"libcudart.so.13", "libcudart.so.12"}) {
    if (void* h = dlopen(name, RTLD_NOW)) return h;
  }
  return nullptr;
}

// init(libraryPath): opens ONNX Runtime and its environment once per process; returns the API version in use.
ENTRY(init) {
  return guarded(e, [&] {
    Args a(e, info);
    if (!ort) {
      std::string path = stringOf(e, a.argv[0]);
      void* library = dlopen(path.c_str(), RTLD_NOW | RTLD_GLOBAL);
      if (!library) throw JsError{std::string("cannot open ONNX Runtime: ") + dlerror()};
      auto getApiBase = reinterpret_cast<const OrtApiBase* (*)()>(dlsym(library, "OrtGetApiBase"));
      if (!getApiBase) throw JsError{path + " has no OrtGetApiBase"};
      const OrtApi* api = getApiBase()->GetApi(ORT_API_VERSION);
      if (!api) throw JsError{std::string("ONNX Runtime ") + getApiBase()->GetVersionString() + " does not serve C API version " + std::to_string(ORT_API_VERSION)};
      ort = api;
      check(ort->CreateEnv(ORT_LOGGING_LEVEL_FATAL, "llmkit", &env));
    }
    napi_value result, version;
    napi_create_object(e, &result);
    napi_create_uint32(e, ORT_API_VERSION, &version);
    napi_set_named_property(e, result, "apiVersion", version);
    return result;
  });
}

// openSession(model: string | Uint8Array, {provider, threads, cuda: {key: value}, config: {key: value}})
ENTRY(openSession) {
  return guarded(e, [&] {
    requireInit();
    Args a(e, info);
    std::string provider = stringOf(e, property(e, a.argv[1], "provider"));
    OrtSessionOptions* options = nullptr;
    check(ort->CreateSessionOptions(&options));
    auto session = new Session();
    try {
      check(ort->SetSessionGraphOptimizationLevel(options, ORT_ENABLE_ALL));
      napi_value threads = property(e, a.argv[1], "threads");
      if (!isUndefined(e, threads)) {
        int32_t n;
        checkNapi(napi_get_value_int32(e, threads, &n), "threads");
        check(ort->SetIntraOpNumThreads(options, n));
        check(ort->SetInterOpNumThreads(options, 1));
      }
      for (const auto& [key, value] : stringMap(e, property(e, a.argv[1], "config"))) check(ort->AddSessionConfigEntry(options, key.c_str(), value.c_str()));
      if (provider == "cuda") {
        OrtCUDAProviderOptionsV2* cuda = nullptr;
        check(ort->CreateCUDAProviderOptions(&cuda));
        std::vector<const char*> keys, values;
        auto cudaOptions = stringMap(e, property(e, a.argv[1], "cuda"));
        for (const auto& [key, value] : cudaOptions) {
          keys.push_back(key.c_str());
          values.push_back(value.c_str());
        }
        OrtStatus* status = ort->UpdateCUDAProviderOptions(cuda, keys.data(), values.data(), keys.size());
        if (!status) status = ort->SessionOptionsAppendExecutionProvider_CUDA_V2(options, cuda);
        ort->ReleaseCUDAProviderOptions(cuda);
        check(status);
        session->cuda = true;
      } else if (provider != "cpu") {
        throw JsError{"provider must be cpu or cuda (got " + provider + ")"};
      }
      bool isString;
      napi_valuetype t;
      napi_typeof(e, a.argv[0], &t);
      isString = t == napi_string;
      if (isString) {
        check(ort->CreateSession(env, stringOf(e, a.argv[0]).c_str(), options, &session->session));
      } else {
        TypedArray bytes = typedArrayOf(e, a.argv[0]);
        check(ort->CreateSessionFromArray(env, bytes.data, bytes.bytes, options, &session->session));
      }
      if (session->cuda) {
        check(ort->CreateMemoryInfo("Cuda", OrtDeviceAllocator, 0, OrtMemTypeDefault, &session->deviceMemory));
        check(ort->CreateAllocator(session->session, session->deviceMemory, &session->deviceAllocator));
        if (!cudaMemcpyFn) {
          void* cudart = openCudaRuntime();
          cudaMemcpyFn = cudart ? reinterpret_cast<CudaMemcpy>(dlsym(cudart, "cudaMemcpy")) : nullptr;
          cudaSyncFn = cudart ? reinterpret_cast<CudaSync>(dlsym(cudart, "cudaDeviceSynchronize")) : nullptr;
        }
      }
    } catch (...) {
      ort->ReleaseSessionOptions(options);
      delete session;
      throw;
    }
    ort->ReleaseSessionOptions(options);
    return wrapped(e, session);
  });
}

std::vector<std::string> ioNames(Session* s, bool inputs) {
  size_t count;
  check(inputs ? ort->SessionGetInputCount(s->live(), &count) : ort->SessionGetOutputCount(s->live(), &count));
  OrtAllocator* allocator;
  check(ort->GetAllocatorWithDefaultOptions(&allocator));
  std::vector<std::string> names;
  for (size_t i = 0; i < count; i++) {
    char* name;
    check(inputs ? ort->SessionGetInputName(s->live(), i, allocator, &name) : ort->SessionGetOutputName(s->live(), i, allocator, &name));
    names.emplace_back(name);
    allocator->Free(allocator, name);
  }
  return names;
}

// sessionNames(session) -> {inputs: string[], outputs: string[]}
ENTRY(sessionNames) {
  return guarded(e, [&] {
    Args a(e, info);
    Session* s = unwrapped<Session>(e, a.argv[0]);
    napi_value result;
    napi_create_object(e, &result);
    napi_set_named_property(e, result, "inputs", stringArray(e, ioNames(s, true)));
    napi_set_named_property(e, result, "outputs", stringArray(e, ioNames(s, false)));
    return result;
  });
}

ENTRY(releaseSession) {
  return guarded(e, [&] {
    Args a(e, info);
    unwrapped<Session>(e, a.argv[0])->release();
    return undefinedValue(e);
  });
}

// hostTensor(typedArray, type, shape): a tensor over the array's own memory; ORT reads and writes it in place.
ENTRY(hostTensor) {
  return guarded(e, [&] {
    requireInit();
    Args a(e, info);
    TypedArray array = typedArrayOf(e, a.argv[0]);
    const ElementType& type = elementType(stringOf(e, a.argv[1]));
    std::vector<int64_t> shape = shapeOf(e, a.argv[2]);
    size_t bytes = elementCount(shape) * type.bytes;
    if (bytes > array.bytes) throw JsError{"the array holds " + std::to_string(array.bytes) + " bytes, the shape needs " + std::to_string(bytes)};
    OrtMemoryInfo* cpu;
    check(ort->CreateCpuMemoryInfo(OrtDeviceAllocator, OrtMemTypeDefault, &cpu));
    auto value = new Value();
    OrtStatus* status = ort->CreateTensorWithDataAsOrtValue(cpu, array.data, bytes, shape.data(), shape.size(), type.onnx, &value->value);
    ort->ReleaseMemoryInfo(cpu);
    if (status) {
      delete value;
      check(status);
    }
    value->data = array.data;
    value->bytes = bytes;
    value->elementBytes = type.bytes;
    value->memoryOwner = Keep(e, a.argv[0]);
    return wrapped(e, value);
  });
}

// deviceTensor(session, type, shape): a tensor in the session's device memory (CUDA), allocated once.
ENTRY(deviceTensor) {
  return guarded(e, [&] {
    Args a(e, info);
    Session* s = unwrapped<Session>(e, a.argv[0]);
    if (s->released) throw JsError{"the session was released"};
    if (!s->deviceAllocator) throw JsError{"device tensors need a CUDA session"};
    const ElementType& type = elementType(stringOf(e, a.argv[1]));
    std::vector<int64_t> shape = shapeOf(e, a.argv[2]);
    auto value = new Value();
    OrtStatus* status = ort->CreateTensorAsOrtValue(s->deviceAllocator, shape.data(), shape.size(), type.onnx, &value->value);
    if (!status) status = ort->GetTensorMutableData(value->value, &value->data);
    if (status) {
      delete value;
      check(status);
    }
    value->bytes = elementCount(shape) * type.bytes;
    value->elementBytes = type.bytes;
    value->device = true;
    value->memoryOwner = Keep(e, a.argv[0]);
    value->allocatedBy = s;
    s->deviceValues++;
    return wrapped(e, value);
  });
}

// tensorView(value, offsetElements, shape): a tensor over part of another's memory (one row of a batch cache).
ENTRY(tensorView) {
  return guarded(e, [&] {
    Args a(e, info);
    Value* base = unwrapped<Value>(e, a.argv[0]);
    int64_t offset;
    checkNapi(napi_get_value_int64(e, a.argv[1], &offset), "offset");
    std::vector<int64_t> shape = shapeOf(e, a.argv[2]);
    OrtTensorTypeAndShapeInfo* typeInfo;
    check(ort->GetTensorTypeAndShape(base->value, &typeInfo));
    ONNXTensorElementDataType onnxType;
    OrtStatus* typeStatus = ort->GetTensorElementType(typeInfo, &onnxType);
    ort->ReleaseTensorTypeAndShapeInfo(typeInfo);
    check(typeStatus);
    size_t start = static_cast<size_t>(offset) * base->elementBytes;
    size_t bytes = elementCount(shape) * base->elementBytes;
    if (offset < 0 || start + bytes > base->bytes) throw JsError{"the view lies outside its tensor"};
    const OrtMemoryInfo* memory;
    check(ort->GetTensorMemoryInfo(base->value, &memory));
    auto value = new Value();
    char* data = static_cast<char*>(base->data) + start;
    OrtStatus* status = ort->CreateTensorWithDataAsOrtValue(memory, data, bytes, shape.data(), shape.size(), onnxType, &value->value);
    if (status) {
      delete value;
      check(status);
    }
    value->data = data;
    value->bytes = bytes;
    value->elementBytes = base->elementBytes;
    value->device = base->device;
    value->memoryOwner = Keep(e, a.argv[0]);
    return wrapped(e, value);
  });
}

// copyTensor(value, typedArray, toDevice, offsetBytes): host <-> a tensor's memory, `typedArray.byteLength` bytes.
ENTRY(copyTensor) {
  return guarded(e, [&] {
    Args a(e, info);
    Value* v = unwrapped<Value>(e, a.argv[0]);
    TypedArray array = typedArrayOf(e, a.argv[1]);
    bool toTensor;
    checkNapi(napi_get_value_bool(e, a.argv[2], &toTensor), "direction");
    int64_t offset = 0;
    if (!isUndefined(e, a.argv[3])) checkNapi(napi_get_value_int64(e, a.argv[3], &offset), "offset");
    if (offset < 0 || static_cast<size_t>(offset) + array.bytes > v->bytes) throw JsError{"the copy lies outside the tensor"};
    char* at = static_cast<char*>(v->data) + offset;
    if (!v->device) {
      toTensor ? std::memcpy(at, array.data, array.bytes) : std::memcpy(array.data, at, array.bytes);
    } else {
      if (!cudaMemcpyFn || !cudaSyncFn) throw JsError{"the CUDA runtime is not loaded"};
      // 1 = cudaMemcpyHostToDevice, 2 = cudaMemcpyDeviceToHost; the sync orders the copy with ORT's own stream.
      int code = toTensor ? cudaMemcpyFn(at, array.data, array.bytes, 1) : cudaMemcpyFn(array.data, at, array.bytes, 2);
      if (code == 0) code = cudaSyncFn();
      if (code != 0) throw JsError{"CUDA copy failed with error " + std::to_string(code)};
    }
    return undefinedValue(e);
  });
}

// createBinding(session)
ENTRY(createBinding) {
  return guarded(e, [&] {
    Args a(e, info);
    Session* s = unwrapped<Session>(e, a.argv[0]);
    auto binding = new Binding();
    OrtStatus* status = ort->CreateIoBinding(s->live(), &binding->binding);
    if (status) {
      delete binding;
      check(status);
    }
    binding->session = Keep(e, a.argv[0]);
    return wrapped(e, binding);
  });
}

// bind(binding, "input" | "output", name, value)
ENTRY(bind) {
  return guarded(e, [&] {
    Args a(e, info);
    Binding* b = unwrapped<Binding>(e, a.argv[0]);
    if (b->running) throw JsError{"the binding is in use by a run"};
    bool input = stringOf(e, a.argv[1]) == "input";
    std::string name = stringOf(e, a.argv[2]);
    Value* v = unwrapped<Value>(e, a.argv[3]);
    check(input ? ort->BindInput(b->binding, name.c_str(), v->value) : ort->BindOutput(b->binding, name.c_str(), v->value));
    b->bound[(input ? "in:" : "out:") + name] = Keep(e, a.argv[3]);
    return undefinedValue(e);
  });
}

struct RunWork {
  napi_async_work work = nullptr;
  napi_deferred deferred = nullptr;
  Binding* binding = nullptr;
  Keep keepBinding;
  OrtSession* session = nullptr;
  OrtRunOptions* options = nullptr;
  std::string error;
};

void executeRun(napi_env, void* data) {
  auto w = static_cast<RunWork*>(data);
  OrtStatus* status = ort->RunWithBinding(w->session, w->options, w->binding->binding);
  if (!status) status = ort->SynchronizeBoundOutputs(w->binding->binding);
  if (status) {
    w->error = ort->GetErrorMessage(status);
    ort->ReleaseStatus(status);
  }
}

void completeRun(napi_env e, napi_status, void* data) {
  auto w = static_cast<RunWork*>(data);
  w->binding->running = false;
  w->binding->runOptions = nullptr;
  if (w->error.empty()) {
    napi_resolve_deferred(e, w->deferred, undefinedValue(e));
  } else {
    napi_value message, error;
    napi_create_string_utf8(e, w->error.c_str(), w->error.size(), &message);
    napi_create_error(e, nullptr, message, &error);
    napi_reject_deferred(e, w->deferred, error);
  }
  if (w->options) ort->ReleaseRunOptions(w->options);
  napi_delete_async_work(e, w->work);
  delete w;
}

// run(binding, runConfig?): a promise; the run happens on a worker thread of libuv's pool.
ENTRY(run) {
  return guarded(e, [&] {
    Args a(e, info);
    Binding* b = unwrapped<Binding>(e, a.argv[0]);
    if (b->running) throw JsError{"the binding is in use by a run"};
    Session* s = unwrapped<Session>(e, [&] {
      napi_value v;
      napi_get_reference_value(e, b->session.ref, &v);
      return v;
    }());
    auto w = new RunWork();
    w->binding = b;
    w->session = s->live();
    try {
      auto config = stringMap(e, a.argv[1]);
      check(ort->CreateRunOptions(&w->options));
      for (const auto& [key, value] : config) check(ort->AddRunConfigEntry(w->options, key.c_str(), value.c_str()));
    } catch (...) {
      if (w->options) ort->ReleaseRunOptions(w->options);
      delete w;
      throw;
    }
    w->keepBinding = Keep(e, a.argv[0]);
    napi_value promise, name;
    napi_create_promise(e, &w->deferred, &promise);
    napi_create_string_utf8(e, "llmkit-ort-run", NAPI_AUTO_LENGTH, &name);
    napi_create_async_work(e, nullptr, name, executeRun, completeRun, w, &w->work);
    b->running = true;
    b->runOptions = w->options;
    napi_queue_async_work(e, w->work);
    return promise;
  });
}

// terminate(binding): the binding's run in progress, if any, stops before its next node and rejects.
ENTRY(terminate) {
  return guarded(e, [&] {
    Args a(e, info);
    Binding* b = unwrapped<Binding>(e, a.argv[0]);
    if (b->running && b->runOptions) check(ort->RunOptionsSetTerminate(b->runOptions));
    return undefinedValue(e);
  });
}

napi_value defineExports(napi_env e, napi_value object) {
  const napi_property_descriptor functions[] = {
      {"init", nullptr, init, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"openSession", nullptr, openSession, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"sessionNames", nullptr, sessionNames, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"releaseSession", nullptr, releaseSession, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"hostTensor", nullptr, hostTensor, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"deviceTensor", nullptr, deviceTensor, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"tensorView", nullptr, tensorView, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"copyTensor", nullptr, copyTensor, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"createBinding", nullptr, createBinding, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"bind", nullptr, bind, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"run", nullptr, run, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"terminate", nullptr, terminate, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(e, object, sizeof(functions) / sizeof(functions[0]), functions);
  return object;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, defineExports)
