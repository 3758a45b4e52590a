"""Extracts the JSON bodies of Hrana and sync exchanges from the wire logs into JSON-lines fixtures.

The logging server writes a request when it arrives and its answer when it is sent, so answers to
long polls interleave with other connections' requests; an answer carries no connection id. Each
answer is matched to the one outstanding request whose route its body's shape fits.
"""
import glob, json, os, re, sys

src, out = sys.argv[1], sys.argv[2]
head = re.compile(r'^\[conn (\d+)\] \d\d:\d\d:\d\d ([A-Z]+) (\S+) HTTP/1\.1$')
kinds = {}

def add(kind, text):
    json.loads(text)
    entries = kinds.setdefault(kind, [])
    if text not in entries:
        entries.append(text)

def route(method, path):
    p = path.split('?')[0]
    for suffix, name in [('/v1/execute', 'v1-execute'), ('/v1/batch', 'v1-batch'), ('/v2/pipeline', 'v2-pipeline'),
                         ('/v3/pipeline', 'v3-pipeline'), ('/v3/cursor', 'v3-cursor'), ('/info', 'info')]:
        if p.endswith(suffix):
            return name
    if re.search(r'/sync/\d+/\d+/\d+$', p):
        return 'sync-pull' if method == 'GET' else 'sync-push'
    return 'other'

def text(hexdigits):
    try:
        return bytes.fromhex(hexdigits).decode('utf-8')
    except UnicodeDecodeError:
        return None

def fits(name, body):
    """Which routes an answer body could belong to."""
    if body is None:
        return name in ('other', 'sync-pull')  # binary: frames, exports, gRPC
    if not body.strip():
        return True  # no body: any route
    lines = [l for l in body.split('\n') if l.strip()]
    try:
        first = json.loads(lines[0]) if lines else None
    except ValueError:
        return True  # plain text: any route
    if not isinstance(first, dict):
        return False
    if 'current_generation' in first:
        return name == 'info'
    if 'status' in first and 'generation' in first:
        return name in ('sync-pull', 'sync-push')
    if 'results' in first:
        return name in ('v2-pipeline', 'v3-pipeline')
    if 'baton' in first:
        return name == 'v3-cursor'
    if 'result' in first or 'message' in first:
        return name in ('v1-execute', 'v1-batch', 'v2-pipeline', 'v3-pipeline')
    return False

def record(request, status, body):
    name = request['route']
    if not body or name == 'other':
        return
    if name == 'v3-cursor' and status == 200:
        lines = [l for l in body.split('\n') if l.strip()]
        add('responses-v3-cursor-headers', lines[0].strip())
        for line in lines[1:]:
            add('responses-v3-cursor-entries', line.strip())
        return
    try:
        json.loads(body)
    except ValueError:
        return  # plain-text answers ("not found", "Received an invalid baton")
    if name in ('v1-execute', 'v1-batch') and status != 200:
        add('responses-v1-errors', body.strip())
    elif name in ('v2-pipeline', 'v3-pipeline') and status != 200:
        add('responses-pipeline-errors', body.strip())
    else:
        add('responses-' + name, body.strip())

for path in sorted(glob.glob(os.path.join(src, '*.txt'))):
    outstanding = []  # requests without an answer yet, oldest first
    current = None  # the request whose header lines are being read
    answer = None  # [status, body] of the answer being read
    def settle():
        global answer
        if answer is None:
            return
        status, body = answer
        answer = None
        candidates = [r for r in outstanding if fits(r['route'], body)]
        routes = {r['route'] for r in candidates}
        if len(routes) != 1:
            raise SystemExit(f'{path}: cannot match an answer ({status}) to one of {[r["route"] for r in outstanding]}')
        chosen = candidates[0]
        outstanding.remove(chosen)
        record(chosen, status, body)
    for line in open(path, encoding='utf-8'):
        line = line.rstrip('\n')
        m = head.match(line)
        s = line.strip()
        if m:
            settle()
            current = {'conn': m.group(1), 'route': route(m.group(2), m.group(3))}
            outstanding.append(current)
        elif s.startswith('body-hex: ') and current is not None:
            body = text(s[len('body-hex: '):])
            if body is not None and current['route'] not in ('other', 'info', 'sync-pull', 'sync-push'):
                add('requests-' + current['route'], body.strip())
        elif s.startswith('-> responded '):
            settle()
            current = None
            answer = [int(s.split()[2]), '']
        elif s.startswith('resp-body-hex: ') and answer is not None:
            answer[1] = text(s[len('resp-body-hex: '):])
    settle()

for kind, entries in sorted(kinds.items()):
    with open(os.path.join(out, kind + '.jsonl'), 'w', encoding='utf-8') as handle:
        handle.write('\n'.join(entries) + '\n')
    print(kind, len(entries))
