-- Shared by the dataset targets: the input as NUL-separated file contents,
-- and a small image for the files those name.
local crlab = require 'crlab'
local image = require 'crlab.image'
local M = {}

function M.parts(data)
  local out = {}
  for p in (data .. '\0'):gmatch('([^%z]*)%z') do out[#out + 1] = p end
  return out
end

-- Writes parts[i] to dir/names[i]; a missing part leaves the file out.
function M.write_files(dir, names, parts)
  for i, name in ipairs(names) do
    local path = dir .. '/' .. name
    os.remove(path)
    if parts[i] then
      local f = assert(io.open(path, 'wb'))
      f:write(parts[i])
      f:close()
    end
  end
end

function M.make_images(paths)
  local img = crlab.zeros({3, 12, 16}, 'uint8')
  for ch = 1, 3 do for y = 1, 12 do for x = 1, 16 do img[ch][y][x] = 4 * x + 3 * y + 20 * ch end end end
  for _, p in ipairs(paths) do
    assert(os.execute("mkdir -p '" .. p:match('^(.*)/') .. "'"))
    if p:match('%.png$') then image.save(p, img) else image.saveJpeg(p, img, 90) end
  end
end

-- The first sample of each split, as training reads it.
function M.touch(ds)
  for _, s in ipairs({ds.train, ds.test}) do
    if s:size() > 0 then s:get(1) end
  end
end
return M
