-- crlab.plot: line plots through gnuplot (Debian's gnuplot-nox), as PNG
-- files or as text in the terminal.
--
--   crlab.plot.lines{file = 'loss.png', title = 'CRL', xlabel = 'p_y',
--                    series = {{name = 'CE', x = xs, y = ys}, ...}}
--   crlab.plot.lines{terminal = true, ...}   -- ASCII plot on stdout
-- A series with lo and hi (as long as x) is drawn with a shaded band
-- between them (e.g. min..max over seeds) in its line's colour.
local M = {}

local function quote(s)
  return '"' .. tostring(s):gsub('\\', '\\\\'):gsub('"', '\\"') .. '"'
end

function M.available()
  local p = io.popen('command -v gnuplot 2>/dev/null')
  local out = p:read('*a')
  p:close()
  return out ~= ''
end

-- Runs a gnuplot script (a list of lines); returns what gnuplot printed
-- and whether it exited cleanly. Every plot in crlab goes through here.
function M.run(lines)
  if not M.available() then
    error('crlab.plot: gnuplot was not found (apt-get install gnuplot-nox)', 3)
  end
  local script = os.tmpname()
  local f = assert(io.open(script, 'w'))
  f:write(table.concat(lines, '\n'), '\n')
  f:close()
  -- (a sanitizer runtime preloaded by `make asan` must not reach gnuplot)
  local p = io.popen('env -u LD_PRELOAD gnuplot ' .. script .. ' 2>&1')
  local out = p:read('*a')
  local ok = p:close()
  os.remove(script)
  return out, ok == true or ok == 0
end

function M.lines(opts)
  assert(type(opts) == 'table' and type(opts.series) == 'table' and #opts.series > 0,
         'crlab.plot.lines needs a table with a non-empty series list')
  if not M.available() then
    error('crlab.plot: gnuplot was not found (apt-get install gnuplot-nox)', 2)
  end
  for _, s in ipairs(opts.series) do
    if #s.x ~= #s.y then
      error('crlab.plot: series ' .. tostring(s.name) .. ' has ' .. #s.x .. ' x values and ' ..
            #s.y .. ' y values', 2)
    end
    if (s.lo or s.hi) and not (s.lo and s.hi and #s.lo == #s.x and #s.hi == #s.x) then
      error('crlab.plot: series ' .. tostring(s.name) .. ': a band needs lo and hi, each with ' .. #s.x ..
            ' values (one per x)', 2)
    end
  end
  if not opts.terminal and not opts.file then error('crlab.plot: give file = "out.png" or terminal = true', 2) end
  local data = os.tmpname()
  local f = assert(io.open(data, 'w'))
  for _, s in ipairs(opts.series) do
    for i = 1, #s.x do
      if s.lo then
        f:write(string.format('%.10g %.10g %.10g %.10g\n', s.x[i], s.y[i], s.lo[i], s.hi[i]))
      else
        f:write(string.format('%.10g %.10g\n', s.x[i], s.y[i]))
      end
    end
    f:write('\n\n')
  end
  f:close()
  local script = {}
  if opts.terminal then
    script[#script + 1] = string.format('set terminal dumb %d %d', opts.width or 79, opts.height or 24)
  else
    script[#script + 1] = string.format('set terminal pngcairo size %d,%d noenhanced',
                                        opts.width or 800, opts.height or 500)
    script[#script + 1] = 'set output ' .. quote(opts.file)
  end
  if opts.title then script[#script + 1] = 'set title ' .. quote(opts.title) end
  if opts.xlabel then script[#script + 1] = 'set xlabel ' .. quote(opts.xlabel) end
  if opts.ylabel then script[#script + 1] = 'set ylabel ' .. quote(opts.ylabel) end
  if opts.xtics then script[#script + 1] = 'set xtics ' .. opts.xtics end
  if opts.logx then script[#script + 1] = 'set logscale x' end
  if opts.logy then script[#script + 1] = 'set logscale y' end
  if opts.yrange then
    script[#script + 1] = string.format('set yrange [%g:%g]', opts.yrange[1], opts.yrange[2])
  end
  script[#script + 1] = 'set key ' .. (opts.key or 'top right')
  script[#script + 1] = 'set grid'
  local plots = {}
  for i, s in ipairs(opts.series) do
    if s.lo then
      plots[#plots + 1] = string.format('%s index %d using 1:3:4 with filledcurves fs transparent solid 0.2 ' ..
                                        'noborder lt %d notitle', quote(data), i - 1, i)
    end
    plots[#plots + 1] = string.format('%s index %d using 1:2 with %s lw 2 lt %d title %s', quote(data), i - 1,
                                      s.style or 'lines', i, quote(s.name or ('series ' .. i)))
  end
  script[#script + 1] = 'plot ' .. table.concat(plots, ', ')
  local out, ok = M.run(script)
  os.remove(data)
  if opts.terminal then io.write(out) return end
  local check = io.open(opts.file, 'rb')
  if not check or not ok or out:find('error') or out:find('Error') then
    if check then check:close() end
    error('crlab.plot: gnuplot failed writing ' .. opts.file .. ': ' .. out, 2)
  end
  check:close()
  return ok
end

return M
