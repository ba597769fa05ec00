-- crlab.checkpoint: tensors to and from safetensors files, so weights can
-- be read by numpy, PyTorch and anything else that reads the format:
--   8 bytes   little-endian u64 N, the header length
--   N bytes   JSON: {"name": {"dtype": "F32", "shape": [...],
--                     "data_offsets": [begin, end]}, ...,
--                     "__metadata__": {string: string}}
--   the data, each tensor's bytes at its offsets (little-endian)
-- Tensors on the GPU are copied to the host and written like any other;
-- loading always makes host tensors (copy them onward with :copy or
-- :cuda()). Saving is atomic: the file is written beside its destination
-- under a temporary name and renamed into place, so an interrupted save
-- never leaves a half-written checkpoint.
local ffi = require 'ffi'
local core = require 'crlab.core'
local T = require 'crlab.tensor'
local json = require 'crlab.json'
local C, check = core.C, core.check

local M = {}

local to_st = {[tonumber(C.CRL_FLOAT32)] = 'F32', [tonumber(C.CRL_INT32)] = 'I32', [tonumber(C.CRL_UINT8)] = 'U8'}
local from_st = {F32 = C.CRL_FLOAT32, I32 = C.CRL_INT32, U8 = C.CRL_UINT8}

ffi.cdef [[
  int rename(const char *oldpath, const char *newpath);
  int open(const char *pathname, int flags, ...);
  int fsync(int fd);
  int close(int fd);
]]

-- Flushes a closed file's data to disk before it is renamed into place.
local function sync_file(path)
  local fd = ffi.C.open(path, 0) -- O_RDONLY
  if fd >= 0 then
    ffi.C.fsync(fd)
    ffi.C.close(fd)
  end
end

-- tensors: an array of {name, tensor}; metadata: string -> string.
function M.save(path, tensors, metadata)
  local header, offset, blobs = {}, 0, {}
  for i, nt in ipairs(tensors) do
    local name, t = nt[1], nt[2]
    if header[name] then error('checkpoint: tensor name ' .. name .. ' appears twice', 2) end
    -- a host copy of a CUDA tensor (plain, contiguous): the file never
    -- depends on where the tensors were, and loads on a CPU-only machine
    local c = t:contiguous():cpu()
    local nbytes = c:numel() * C.crl_dtype_size(c.dtype)
    header[name] = {dtype = to_st[tonumber(c.dtype)], shape = c:size(), data_offsets = {offset, offset + nbytes}}
    if #header[name].shape == 0 then header[name].shape = {} end
    blobs[i] = {c, nbytes}
    offset = offset + nbytes
  end
  local meta = {}
  for k, v in pairs(metadata or {}) do meta[k] = tostring(v) end
  header.__metadata__ = meta
  local text = json.encode(header)
  text = text .. string.rep(' ', (8 - #text % 8) % 8) -- align the data to 8 bytes
  local tmp = path .. '.tmp'
  local f, err = io.open(tmp, 'wb')
  if not f then error('checkpoint: cannot write ' .. tmp .. ': ' .. tostring(err), 2) end
  local n = #text
  local len = {}
  for i = 1, 8 do
    len[i] = string.char(n % 256)
    n = math.floor(n / 256)
  end
  local ok, werr = f:write(table.concat(len), text)
  for _, b in ipairs(blobs) do
    if not ok then break end
    if b[2] > 0 then ok, werr = f:write(ffi.string(C.crl_tensor_data(b[1]), b[2])) end
  end
  if ok then ok, werr = f:flush() end
  f:close()
  if ok then sync_file(tmp) end
  if not ok then
    os.remove(tmp)
    error('checkpoint: writing ' .. tmp .. ' failed: ' .. tostring(werr) .. ' (nothing was replaced)', 2)
  end
  if ffi.C.rename(tmp, path) ~= 0 then
    os.remove(tmp)
    error('checkpoint: cannot rename ' .. tmp .. ' to ' .. path, 2)
  end
end

-- Opens path and reads its header: the open file, its size, the header
-- table, where the data begins, and bad(msg), which closes the file and
-- fails naming it.
local function open_header(path)
  local f, err = io.open(path, 'rb')
  if not f then error('checkpoint: cannot open ' .. path .. ': ' .. tostring(err), 3) end
  local size = f:seek('end')
  f:seek('set', 0)
  local head = f:read(8)
  local function bad(msg)
    f:close()
    error('checkpoint: ' .. path .. ' is not a valid safetensors file: ' .. msg, 4)
  end
  if not head or #head < 8 then bad('shorter than 8 bytes') end
  local n = 0
  for i = 8, 1, -1 do n = n * 256 + head:byte(i) end
  if n < 2 or n > size - 8 or n > 100 * 2 ^ 20 then bad('header length ' .. n .. ' does not fit a ' .. size .. '-byte file') end
  local ok, header = pcall(json.decode, f:read(n))
  if not ok or type(header) ~= 'table' then bad(tostring(header)) end
  return f, size, header, 8 + n, bad
end

-- The metadata alone (string -> string), reading only the header.
function M.metadata(path)
  local f, _, header = open_header(path)
  f:close()
  return header.__metadata__ or {}
end

-- Returns tensors (name -> tensor, in file order as .names) and metadata.
function M.load(path)
  local f, size, header, base, bad = open_header(path)
  local tensors, names = {}, {}
  local entries = {}
  for name, e in pairs(header) do
    if name ~= '__metadata__' then entries[#entries + 1] = {name, e} end
  end
  table.sort(entries, function(a, b) return a[2].data_offsets[1] < b[2].data_offsets[1] end)
  for _, ne in ipairs(entries) do
    local name, e = ne[1], ne[2]
    local dt = from_st[e.dtype]
    if not dt then bad('tensor ' .. name .. ' has dtype ' .. tostring(e.dtype) .. ' (crlab reads F32, I32, U8)') end
    local shape = e.shape or {}
    local t = T.new(dt, C.CRL_CPU, shape)
    local b, eoff = e.data_offsets[1], e.data_offsets[2]
    local nbytes = t:numel() * C.crl_dtype_size(dt)
    if eoff - b ~= nbytes or base + eoff > size then
      bad('tensor ' .. name .. ' has offsets [' .. b .. ', ' .. eoff .. '] for ' .. nbytes .. ' bytes in a ' .. size .. '-byte file')
    end
    f:seek('set', base + b)
    local data = f:read(nbytes)
    if not data or #data ~= nbytes then bad('tensor ' .. name .. ' is truncated') end
    ffi.copy(C.crl_tensor_data(t), data, nbytes)
    tensors[name] = t
    names[#names + 1] = name
  end
  f:close()
  tensors.names = names
  return tensors, header.__metadata__ or {}
end

return M
