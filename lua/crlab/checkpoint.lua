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
-- never leaves a half-written checkpoint. The metadata hold a CRC-32 of
-- each tensor's bytes ("crc32.<name>", 8 hex digits) and one of the header
-- ("crc32.__header__": names, dtypes, shapes, offsets, other metadata), all
-- checked on load, so a damaged file is reported as such, naming the tensor.
local ffi = require 'ffi'
local bit = require 'bit'
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

local crc_buf = ffi.new('uint32_t[1]')

-- zlib's CRC-32 of n bytes at p (a pointer or a string), as 8 hex digits.
local function crc32(p, n)
  crc_buf[0] = 0
  check(C.crl_crc32(crc_buf, p, n))
  return bit.tohex(crc_buf[0])
end

-- What the header's CRC-32 covers: each tensor's name, dtype, shape and
-- offsets and each metadata entry but the CRCs, sorted.
local function header_text(entries, meta)
  local lines = {}
  for name, e in pairs(entries) do
    local shape = {}
    for d, n in ipairs(e.shape) do shape[d] = string.format('%d', n) end
    lines[#lines + 1] = string.format('%s\0%s\0%s\0%d,%d', name, e.dtype, table.concat(shape, ','),
                                      e.data_offsets[1], e.data_offsets[2])
  end
  for k, v in pairs(meta) do
    if k:sub(1, 6) ~= 'crc32.' then lines[#lines + 1] = '\1' .. k .. '\0' .. v end
  end
  table.sort(lines)
  return table.concat(lines, '\n')
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
    local shape = {}
    for d, n in ipairs(c:size()) do shape[d] = n end
    header[name] = {dtype = to_st[tonumber(c.dtype)], shape = shape, data_offsets = {offset, offset + nbytes}}
    blobs[i] = {c, nbytes}
    offset = offset + nbytes
  end
  local meta = {}
  for k, v in pairs(metadata or {}) do meta[k] = tostring(v) end
  for i, nt in ipairs(tensors) do meta['crc32.' .. nt[1]] = crc32(C.crl_tensor_data(blobs[i][1]), blobs[i][2]) end
  local covered = header_text(header, meta) -- header holds only the tensors' entries so far
  meta['crc32.__header__'] = crc32(covered, #covered)
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
-- table, its metadata, where the data begins, and bad(msg), which closes
-- the file and fails naming it as damaged.
local function open_header(path)
  local f, err = io.open(path, 'rb')
  if not f then error('checkpoint: cannot open ' .. path .. ': ' .. tostring(err), 3) end
  local size = f:seek('end')
  f:seek('set', 0)
  local head = f:read(8)
  local function bad(msg)
    f:close()
    error('checkpoint: ' .. path .. ' is damaged: ' .. msg, 4)
  end
  if not head or #head < 8 then bad('shorter than 8 bytes (not a safetensors file)') end
  local n = 0
  for i = 8, 1, -1 do n = n * 256 + head:byte(i) end
  if n < 2 or n > size - 8 or n > 100 * 2 ^ 20 then
    bad(string.format('header length %.0f does not fit a %d-byte file (not a safetensors file?)', n, size))
  end
  local ok, header = pcall(json.decode, f:read(n))
  if not ok then bad('its header is not JSON (' .. tostring(header) .. ')') end
  if type(header) ~= 'table' then bad('its header is not a JSON object') end
  local meta = header.__metadata__ or {}
  if type(meta) ~= 'table' then bad('its __metadata__ is not an object') end
  for k, v in pairs(meta) do
    if type(k) ~= 'string' or type(v) ~= 'string' then bad('its __metadata__ is not an object of strings') end
  end
  return f, size, header, meta, 8 + n, bad
end

-- The metadata alone (string -> string), reading only the header.
function M.metadata(path)
  local f, _, _, meta = open_header(path)
  f:close()
  return meta
end

local function whole(v) return type(v) == 'number' and v >= 0 and v % 1 == 0 and v < 2 ^ 53 end

-- Returns tensors (name -> tensor, in file order as .names) and metadata.
-- Every structural error and every CRC-32 that does not match (files
-- written here hold one per tensor and one over the header; files from
-- elsewhere may hold none) fails with 'checkpoint: PATH is damaged: ...'.
function M.load(path)
  local f, size, header, meta, base, bad = open_header(path)
  local entries, list = {}, {}
  for name, e in pairs(header) do
    if name ~= '__metadata__' then
      if type(name) ~= 'string' then bad('its header is not an object of tensors') end
      if type(e) ~= 'table' then bad('tensor ' .. name .. ' has no dtype, shape and offsets') end
      local dt = from_st[e.dtype]
      if not dt then bad('tensor ' .. name .. ' has dtype ' .. tostring(e.dtype) .. ' (crlab reads F32, I32, U8)') end
      local shape, numel, count = e.shape or {}, 1, 0
      if type(shape) ~= 'table' then bad('tensor ' .. name .. ' has no shape list') end
      for _ in pairs(shape) do count = count + 1 end
      if count ~= #shape then bad('tensor ' .. name .. ' has no shape list') end
      for _, d in ipairs(shape) do
        if not whole(d) then bad('tensor ' .. name .. ' has a size ' .. tostring(d) .. ' in its shape') end
        numel = numel * d
      end
      local off = e.data_offsets
      if type(off) ~= 'table' or #off ~= 2 or not whole(off[1]) or not whole(off[2]) then
        bad('tensor ' .. name .. ' has no offsets [begin, end]')
      end
      local nbytes = numel * C.crl_dtype_size(dt)
      if off[2] - off[1] ~= nbytes then
        bad(string.format('tensor %s has offsets [%d, %d] for %.0f bytes', name, off[1], off[2], nbytes))
      end
      entries[name] = e
      list[#list + 1] = {name = name, dt = dt, shape = shape, b = off[1], e = off[2], nbytes = nbytes}
    end
  end
  table.sort(list, function(x, y) return x.b < y.b or x.b == y.b and x.e < y.e end)
  local at = 0 -- the data are contiguous, in the order of the offsets
  for _, x in ipairs(list) do
    if x.b ~= at then bad(string.format('tensor %s begins at byte %d of the data, not %d', x.name, x.b, at)) end
    at = x.e
  end
  if base + at > size then
    bad(string.format('it is truncated: its header promises %.0f bytes, the file holds %d', base + at, size))
  elseif base + at < size then
    bad(string.format('it holds %d bytes after the data its header describes', size - base - at))
  end
  local checked = false
  for k in pairs(meta) do checked = checked or k:sub(1, 6) == 'crc32.' end
  local text = header_text(entries, meta)
  if checked and meta['crc32.__header__'] ~= crc32(text, #text) then
    bad('its header fails its CRC32 check (a tensor\'s name, dtype, shape or offsets, or the metadata, changed)')
  end
  local tensors, names = {}, {}
  for _, x in ipairs(list) do
    local want = meta['crc32.' .. x.name]
    if checked and not want then bad('tensor ' .. x.name .. ' has no CRC32, though the file\'s other tensors do') end
    local data = ''
    if x.nbytes > 0 then
      f:seek('set', base + x.b)
      data = f:read(x.nbytes)
      if not data or #data ~= x.nbytes then bad('tensor ' .. x.name .. ' is truncated') end
    end
    if want and crc32(data, x.nbytes) ~= want then
      bad(string.format('tensor %s fails its CRC32 check (%s stored, %s read)', x.name, want, crc32(data, x.nbytes)))
    end
    local t = T.new(x.dt, C.CRL_CPU, x.shape)
    if x.nbytes > 0 then ffi.copy(C.crl_tensor_data(t), data, x.nbytes) end
    tensors[x.name] = t
    names[#names + 1] = x.name
  end
  f:close()
  tensors.names = names
  return tensors, meta
end

return M
