"""Pure: cross-reference checks of a loaded ``Config`` (no I/O).

``check(config)`` returns every problem as a ``Problem(message, path)``; the loader turns each
path (``("queues", "sales", "skills", "billing")``) into file and line. Checked: unknown queue,
flow, node, skill, prompt (and prompt audio), mailbox, music class, trunk, language and pause
reason; duplicate extensions, DIDs, endpoints and pause digits; overlapping feature codes;
unreachable flow nodes; flow loops that never wait for the caller; trunk addresses that would
take a phone for a carrier; callbacks to a caller ID no trunk is trusted to assert.
"""

from __future__ import annotations

import contextlib
import difflib
import ipaddress
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass

from callcenter.config import model as m


@dataclass(frozen=True)
class Problem:
    message: str
    path: tuple[str, ...]


_PromptCheck = Callable[[str | None, tuple[str, ...]], Iterator[Problem]]
_SkillCheck = Callable[[Iterable[str], tuple[str, ...]], Iterator[Problem]]
_RefCheck = Callable[[str | None, tuple[str, ...]], Iterator[Problem]]
_QueueCheck = Callable[[str, tuple[str, ...]], Iterator[Problem]]


def node_path(flow_id: str, node_id: str, *rest: str) -> tuple[str, ...]:
    """The config path of a node; inline nodes (``menu.2``) sit under their parent's key."""
    return ("flows", flow_id, "nodes", *node_id.split("."), *rest)


def check(
    config: m.Config, *, check_prompts: bool = True, broken: frozenset[tuple[str, str]] = frozenset()
) -> list[Problem]:
    """Every cross-reference problem. ``broken`` names (section, id) entries that exist in the
    YAML but could not be read (already reported): references to them are not errors again."""
    return list(_check(config, check_prompts, broken))


def _check(c: m.Config, check_prompts: bool, broken: frozenset[tuple[str, str]]) -> Iterator[Problem]:
    skills = set(c.skills)
    languages = set(c.center.languages)

    def missing(section: str, item: str | None, table: Mapping[str, object]) -> bool:
        return item is not None and item not in table and (section, item) not in broken

    def prompt(pid: str | None, path: tuple[str, ...]) -> Iterator[Problem]:
        if pid is None or not check_prompts:
            return
        if pid not in c.prompts.prompts:
            yield Problem(
                f"unknown prompt {pid!r} (not in ivr_prompts/prompts.yaml{_hint(pid, c.prompts.prompts)})",
                path,
            )
            return
        for lang in c.center.languages:
            if lang not in c.prompts.prompts[pid].texts:
                yield Problem(f"prompt {pid!r} has no text for language {lang!r}", path)
            elif not c.prompts.has_audio(pid, lang):
                yield Problem(
                    f"prompt {pid!r} has no audio for language {lang!r} "
                    f"(expected ivr_prompts/{lang}/{pid}.wav; run make prompts)",
                    path,
                )

    def skill_refs(levels: Iterable[str], path: tuple[str, ...]) -> Iterator[Problem]:
        for s in levels:
            if s not in skills:
                yield Problem(f"unknown skill {s!r} ({_expected(c.skills)})", (*path, s))

    def mailbox(box: str | None, path: tuple[str, ...]) -> Iterator[Problem]:
        if missing("mailboxes", box, c.mailboxes):
            yield Problem(f"unknown mailbox {box!r} ({_expected(c.mailboxes)})", path)

    def queue_ref(q: str, path: tuple[str, ...]) -> Iterator[Problem]:
        if missing("queues", q, c.queues):
            yield Problem(f"unknown queue {q!r} ({_expected(c.queues)})", path)

    # ---------------------------------------------------------------- numbers
    for n in c.numbers:  # (duplicates are found by the loader, which knows where each was)
        p = ("numbers", n.number)
        if missing("flows", n.flow, c.flows):
            yield Problem(f"unknown flow {n.flow!r} ({_expected(c.flows)})", (*p, "flow"))
        if missing("trunks", n.trunk, c.trunks):
            yield Problem(f"unknown trunk {n.trunk!r} ({_expected(c.trunks)})", (*p, "trunk"))
        if n.language is not None and n.language not in languages:
            yield Problem(
                f"unknown language {n.language!r} ({_expected(c.center.languages)})", (*p, "language")
            )

    # ---------------------------------------------------------------- flows
    for flow in c.flows.values():
        yield from _check_flow(c, flow, prompt, skill_refs, mailbox, queue_ref, languages, missing)
    yield from _check_loops(c)

    # ---------------------------------------------------------------- queues
    for q in c.queues.values():
        p = ("queues", q.id)
        yield from skill_refs(q.skills, (*p, "skills"))
        if not q.skills:
            yield Problem("expected at least one required skill", (*p, "skills"))
        if q.music_class != "default" and missing("music", q.music_class, c.music):
            yield Problem(
                f"unknown music class {q.music_class!r} ({_expected(['default', *c.music])})",
                (*p, "music_class"),
            )
        yield from mailbox(q.mailbox, (*p, "mailbox"))
        if q.rona_action == m.RonaAction.PAUSE:
            if q.rona_pause_reason is None:
                yield Problem("rona_action is pause but no rona_pause_reason is given", (*p, "rona_action"))
            elif missing("pause_reasons", q.rona_pause_reason, c.pause_reasons):
                yield Problem(
                    f"unknown pause reason {q.rona_pause_reason!r} ({_expected(c.pause_reasons)})",
                    (*p, "rona_pause_reason"),
                )
        for i, step in enumerate(q.relaxation):
            if step.add_skill is not None and step.add_skill not in skills:
                yield Problem(
                    f"unknown skill {step.add_skill!r} ({_expected(c.skills)})",
                    (*p, "relaxation", str(i), "add_skill"),
                )
        if q.overflow is not None:
            op = (*p, "overflow", q.overflow.kind.value)
            t = q.overflow.target
            if q.max_wait is None:
                yield Problem(
                    "overflow is given but max_wait is not (when would it overflow?)", (*p, "overflow")
                )
            if q.overflow.kind == m.OverflowKind.QUEUE and t is not None:
                if t == q.id:
                    yield Problem("a queue cannot overflow to itself", op)
                else:
                    yield from queue_ref(t, op)
            elif q.overflow.kind == m.OverflowKind.FLOW and missing("flows", t, c.flows):
                yield Problem(f"unknown flow {t!r} ({_expected(c.flows)})", op)
            elif q.overflow.kind == m.OverflowKind.VOICEMAIL:
                yield from mailbox(t, op)
            elif q.overflow.kind == m.OverflowKind.HANGUP:
                yield from prompt(t, op)
    yield from _check_overflow_cycles(c)

    # ---------------------------------------------------------------- people
    extensions: dict[str, tuple[str, ...]] = {}
    endpoints: dict[str, tuple[str, ...]] = {}
    for a in c.agents.values():
        p = ("agents", a.id)
        yield from skill_refs(a.skills, (*p, "skills"))
        yield from mailbox(a.mailbox, (*p, "mailbox"))
        for value, table, key in (
            (a.extension, extensions, "extension"),
            (a.endpoint, endpoints, "endpoint"),
        ):
            if value in table:
                yield Problem(f"duplicate {key} {value!r} (also {_who(table[value])})", (*p, key))
            else:
                table[value] = p
    for s in c.supervisors.values():
        p = ("supervisors", s.id)
        for i, qid in enumerate(s.queues):
            yield from queue_ref(qid, (*p, "queues", str(i)))
        if s.extension is not None:
            if s.extension in extensions:
                yield Problem(
                    f"duplicate extension {s.extension!r} (also {_who(extensions[s.extension])})",
                    (*p, "extension"),
                )
            else:
                extensions[s.extension] = p
        if s.endpoint in endpoints and endpoints[s.endpoint][0] == "supervisors":
            yield Problem(
                f"duplicate endpoint {s.endpoint!r} (also {_who(endpoints[s.endpoint])})", (*p, "endpoint")
            )
        endpoints.setdefault(s.endpoint, p)
    digits: dict[str, str] = {}
    for r in c.pause_reasons.values():
        if r.digits in digits:
            yield Problem(
                f"pause digits {r.digits!r} are used twice (also by {digits[r.digits]!r})",
                ("pause_reasons", r.code, "digits"),
            )
        digits.setdefault(r.digits, r.code)

    # ---------------------------------------------------------------- trunks
    yield from _check_trunks(c, endpoints)
    yield from _check_callback_numbers(c)

    # ---------------------------------------------------------------- feature codes
    codes = c.feature_codes.items()
    for i, (name, code) in enumerate(codes):
        for other, other_code in codes[:i]:
            if code == other_code:
                yield Problem(f"feature code {code!r} is also {other}", ("feature_codes", name))
            elif code.startswith(other_code) or other_code.startswith(code):
                yield Problem(
                    f"feature code {code!r} overlaps {other} {other_code!r} (one is a prefix of the other)",
                    ("feature_codes", name),
                )
        for ext, who in extensions.items():
            if ext.startswith(code) or code.startswith(ext):
                yield Problem(
                    f"feature code {code!r} overlaps extension {ext!r} ({_who(who)})", ("feature_codes", name)
                )

    # ---------------------------------------------------------------- fallback
    if c.fallback is not None:
        fp: tuple[str, ...] = ("fallback",)
        yield from prompt(c.fallback.prompt, (*fp, "prompt"))
        yield from prompt(c.fallback.closed_prompt, (*fp, "closed_prompt"))
        yield from mailbox(c.fallback.mailbox, (*fp, "mailbox"))
        for i, ep in enumerate(c.fallback.endpoints):
            if ep not in endpoints:
                yield Problem(
                    f"unknown endpoint {ep!r} (not an agent's or supervisor's)", (*fp, "endpoints", str(i))
                )

    # ---------------------------------------------------------------- campaigns
    for camp in c.campaigns.values():
        p = ("campaigns", camp.id)
        yield from queue_ref(camp.queue, (*p, "queue"))
        yield from skill_refs(camp.skills, (*p, "skills"))
        if missing("trunks", camp.trunk, c.trunks):
            yield Problem(f"unknown trunk {camp.trunk!r} ({_expected(c.trunks)})", (*p, "trunk"))
        yield from prompt(camp.amd_message, (*p, "amd_message"))
        yield from prompt(camp.identification_prompt, (*p, "identification_prompt"))
        yield from _check_dispositions(c, camp.dispositions, p, missing)
    for q in c.queues.values():
        yield from _check_dispositions(c, q.dispositions, ("queues", q.id), missing)


def _check_dispositions(
    c: m.Config,
    codes: tuple[str, ...],
    path: tuple[str, ...],
    missing: Callable[[str, str | None, Mapping[str, object]], bool],
) -> Iterator[Problem]:
    """Every wrap-up code a queue or campaign lists is one of the ``dispositions`` section's."""
    for code in codes:
        if missing("dispositions", code, c.dispositions):
            yield Problem(
                f"unknown disposition {code!r} ({_expected(c.dispositions)})", (*path, "dispositions")
            )


def _check_flow(
    c: m.Config,
    flow: m.Flow,
    prompt: _PromptCheck,
    skill_refs: _SkillCheck,
    mailbox: _RefCheck,
    queue_ref: _QueueCheck,
    languages: set[str],
    missing: Callable[[str, str | None, Mapping[str, object]], bool],
) -> Iterator[Problem]:
    fp = ("flows", flow.id)
    if flow.start not in flow.nodes:
        yield Problem(
            f"unknown node {flow.start!r} (no such node in flow {flow.id!r}{_hint(flow.start, flow.nodes)})",
            (*fp, "start"),
        )
    for node in flow.nodes.values():
        np_ = node_path(flow.id, node.id)
        for pid in m.node_prompts(node):
            yield from prompt(pid, np_)
        for target in m.node_targets(node):
            if target not in flow.nodes:
                yield Problem(
                    f"unknown node {target!r} (no such node in flow {flow.id!r}{_hint(target, flow.nodes)})",
                    np_,
                )
        match node:
            case m.GotoFlowNode():
                if missing("flows", node.flow, c.flows):
                    yield Problem(f"unknown flow {node.flow!r} ({_expected(c.flows)})", (*np_, "flow"))
            case m.QueueNode():
                yield from queue_ref(node.queue, (*np_, "queue"))
            case m.CallbackNode():
                yield from queue_ref(node.queue, (*np_, "queue"))
            case m.VoicemailNode():
                yield from mailbox(node.mailbox, (*np_, "mailbox"))
            case m.LanguageNode():
                for digit, lang in node.choices.items():
                    if lang not in languages:
                        yield Problem(
                            f"unknown language {lang!r} ({_expected(c.center.languages)})",
                            (*np_, "choices", digit),
                        )
            case m.SetNode():
                yield from skill_refs(node.skills, (*np_, "skills"))
                if node.language is not None and node.language not in languages:
                    yield Problem(
                        f"unknown language {node.language!r} ({_expected(c.center.languages)})",
                        (*np_, "language"),
                    )
            case _:
                pass
    # reachability from the start node
    if flow.start in flow.nodes:
        seen = {flow.start}
        todo = [flow.start]
        while todo:
            nid = todo.pop()
            for t in m.node_targets(flow.nodes[nid]):
                if t in flow.nodes and t not in seen:
                    seen.add(t)
                    todo.append(t)
        for nid in flow.nodes:
            if nid not in seen:
                yield Problem(
                    f"node {nid!r} is unreachable from the start node {flow.start!r}", node_path(flow.id, nid)
                )


def _check_callback_numbers(c: m.Config) -> Iterator[Problem]:
    """A callback node that would call back the caller ID, in a flow reached from a number whose
    trunk is not trusted to assert caller IDs (or names no trunk): the IVR would never call back,
    so the flow must collect the number first (``number_variable``)."""
    untrusted: dict[str, str] = {}  # flow id -> why its callers' IDs are not trusted
    for num in c.numbers:
        trunk = c.trunks.get(num.trunk) if num.trunk else None
        if trunk is not None and trunk.trust_caller_id:
            continue
        why = (
            f"number {num.number} names no trunk"
            if num.trunk is None
            else f"trunk {num.trunk!r} of {num.number}"
        )
        todo = [num.flow]
        while todo:
            fid = todo.pop()
            flow = c.flows.get(fid)
            if flow is None or fid in untrusted:
                continue
            untrusted[fid] = why
            todo += [n.flow for n in flow.nodes.values() if isinstance(n, m.GotoFlowNode)]
    for fid, why in untrusted.items():
        for node in c.flows[fid].nodes.values():
            if isinstance(node, m.CallbackNode) and node.number_variable is None:
                yield Problem(
                    f"calls back the caller ID, which is not trusted here ({why} does not set "
                    "trust_caller_id): collect the number first and name it in number_variable",
                    node_path(fid, node.id),
                )


# Codecs that carry inband DTMF tones intact.
_PLAIN_CODECS = frozenset({"ulaw", "alaw", "slin", "g722"})


def _pbx_hosts(c: m.Config) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """The addresses known to be this PBX's own host: loopback, and the AMI and AGI hosts when
    they are written as addresses (phones and tools on that host send from them)."""
    hosts: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = [
        ipaddress.ip_network("127.0.0.0/8"),
        ipaddress.ip_network("::1/128"),
    ]
    for host in (c.asterisk.ami.host, c.asterisk.agi.host):
        with contextlib.suppress(ValueError):
            hosts.append(ipaddress.ip_network(host))
    return hosts


def _check_trunks(c: m.Config, endpoints: Mapping[str, tuple[str, ...]]) -> Iterator[Problem]:
    """Carriers are identified by their source addresses before phones by their user names, so
    a trunk's ``match`` must cover no address a phone may send from that can be known here (the
    PBX's own host, everything), nor another trunk's; and no trunk may share a PJSIP section name
    with a phone."""
    pbx = _pbx_hosts(c)
    seen: list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str]] = []
    for t in c.trunks.values():
        p = ("trunks", t.id)
        for i, text in enumerate(t.match):
            try:
                net = ipaddress.ip_network(text, strict=False)
            except ValueError:  # reported by the loader
                continue
            mp = (*p, "match", str(i))
            if net.prefixlen == 0:
                yield Problem(
                    f"match {text} is every address: every phone would be taken for carrier {t.id!r} "
                    "(list the carrier's own signalling addresses)",
                    mp,
                )
                continue
            own = next((h for h in pbx if h.version == net.version and h.overlaps(net)), None)
            if own is not None:
                yield Problem(
                    f"match {text} covers this PBX's own host ({own}): a phone or tool there would be "
                    f"taken for carrier {t.id!r} (list the carrier's own signalling addresses)",
                    mp,
                )
            for other, trunk_id in seen:
                if trunk_id != t.id and other.version == net.version and other.overlaps(net):
                    yield Problem(f"match {text} overlaps trunk {trunk_id!r}'s {other}", mp)
            seen.append((net, t.id))
        own_sections = {t.id, f"{t.id}-auth", f"{t.id}-reg", f"{t.id}-identify"}
        for ep, who in endpoints.items():
            if ep in own_sections or f"{ep}-auth" in own_sections:
                yield Problem(
                    f"trunk {t.id!r} and {_who(who)}'s endpoint {ep!r} would share a PJSIP section name", p
                )
        if t.media.dtmf_mode in (m.DtmfMode.INBAND, m.DtmfMode.AUTO) and not _PLAIN_CODECS & set(t.codecs):
            yield Problem(
                f"dtmf_mode {t.media.dtmf_mode.value} needs an uncompressed codec (ulaw or alaw) to carry "
                f"tones, found {', '.join(t.codecs)}",
                (*p, "dtmf_mode"),
            )


def _check_loops(c: m.Config) -> Iterator[Problem]:
    """A cycle through nodes that never wait for the caller (prompt, set, hours, lookup, goto
    flow) would spin for ever; input nodes (menu, collect, language) break cycles."""
    Key = tuple[str, str]

    def successors(key: Key) -> list[Key]:
        flow = c.flows.get(key[0])
        if flow is None or key[1] not in flow.nodes:
            return []
        node = flow.nodes[key[1]]
        if isinstance(node, m.INPUT_NODES):
            return []
        if isinstance(node, m.GotoFlowNode):
            target = c.flows.get(node.flow)
            return [(target.id, target.start)] if target is not None else []
        return [(flow.id, t) for t in m.node_targets(node) if t in flow.nodes]

    state: dict[Key, int] = {}  # 1 = on the stack, 2 = done
    reported: set[frozenset[Key]] = set()
    for flow in c.flows.values():
        for nid in flow.nodes:
            root = (flow.id, nid)
            if root in state:
                continue
            stack: list[tuple[Key, Iterator[Key]]] = [(root, iter(successors(root)))]
            path = [root]
            state[root] = 1
            while stack:
                key, it = stack[-1]
                nxt = next(it, None)
                if nxt is None:
                    state[key] = 2
                    stack.pop()
                    path.pop()
                    continue
                st = state.get(nxt)
                if st == 1:
                    cycle = path[path.index(nxt) :]
                    ident = frozenset(cycle)
                    if ident not in reported:
                        reported.add(ident)
                        shown = " -> ".join(f"{f}.{n}" if f != nxt[0] else n for f, n in [*cycle, nxt])
                        yield Problem(
                            f"flow loop with no caller input: {shown} (add a menu or collect, or end it)",
                            node_path(nxt[0], nxt[1]),
                        )
                elif st is None:
                    state[nxt] = 1
                    path.append(nxt)
                    stack.append((nxt, iter(successors(nxt))))


def _check_overflow_cycles(c: m.Config) -> Iterator[Problem]:
    reported: set[frozenset[str]] = set()
    for q in c.queues.values():
        seen = [q.id]
        cur = q
        while cur.overflow is not None and cur.overflow.kind == m.OverflowKind.QUEUE:
            t = cur.overflow.target
            if t is None or t not in c.queues or t == cur.id:
                break
            if t in seen:
                if t == q.id and frozenset(seen) not in reported:
                    reported.add(frozenset(seen))
                    yield Problem(
                        f"queue overflow loop: {' -> '.join([*seen, t])}",
                        ("queues", q.id, "overflow", "queue"),
                    )
                break
            seen.append(t)
            cur = c.queues[t]


def _who(path: tuple[str, ...]) -> str:
    return f"{path[0][:-1]} {path[1]}"


def _expected(options: Iterable[str]) -> str:
    """``expected one of: a, b, c`` (at most 10 shown), or that there are none."""
    opts = list(options)
    if not opts:
        return "none is defined"
    shown = ", ".join(opts[:10]) + (f", ... ({len(opts)} in all)" if len(opts) > 10 else "")
    return f"expected one of: {shown}"


def _hint(word: str, options: Iterable[str]) -> str:
    found = difflib.get_close_matches(word, list(options), n=1, cutoff=0.75)
    return f"; did you mean {found[0]!r}?" if found else ""
