"""A small writer for modeler-ready BPMN 2.0: a process described in Python, written as XML with a
complete diagram (one pool, horizontal lanes, left to right, no overlapping shapes).

Used once by tools/generate_definitions.py to bootstrap definitions/; after that the .bpmn files are
the source and designers edit them in Camunda Modeler or bpmn.io.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from xml.sax.saxutils import escape, quoteattr

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"

SIZES = {"task": (100, 80), "gateway": (50, 50), "event": (36, 36)}
COLUMN_WIDTH = 160
TRACK_HEIGHT = 120
LANE_TOP_PADDING = 40      # room above the first track for loops drawn back over it
LANE_BOTTOM_PADDING = 40
POOL_X = 100
POOL_LABEL = 30
FIRST_COLUMN_X = 190


@dataclass
class Node:
    id: str
    kind: str              # startEvent, endEvent, userTask, scriptTask, businessRuleTask, callActivity,
                           # exclusiveGateway, inclusiveGateway, intermediateThrowEvent, boundaryEvent
    name: str
    lane: str
    attrs: dict = field(default_factory=dict)
    body: str = ""         # inner XML (documentation excluded)
    documentation: str | None = None
    track: int | None = None
    column: int | None = None
    attached_to: str | None = None
    default: str | None = None
    below: str | None = None   # drawn under this boundary event (and right of it by `dx`), not in a column
    dx: int = 0

    @property
    def shape(self) -> str:
        if self.kind.endswith("Gateway"):
            return "gateway"
        if self.kind.endswith("Event"):
            return "event"
        return "task"


@dataclass
class Flow:
    id: str
    source: str
    target: str
    name: str | None = None
    condition: str | None = None


class Process:
    def __init__(self, key: str, name: str, lanes: list[str], documentation: str, short: str,
                 io: str | None = None, messages: dict[str, str] | None = None):
        self.key, self.name, self.lanes, self.documentation, self.short = key, name, lanes, documentation, short
        self.io = io
        self.messages = messages or {}
        self.nodes: dict[str, Node] = {}
        self.flows: list[Flow] = []

    # --- building -----------------------------------------------------------------------------
    def add(self, node: Node) -> Node:
        assert node.id not in self.nodes, node.id
        assert node.lane in self.lanes or node.kind == "boundaryEvent", (node.id, node.lane)
        self.nodes[node.id] = node
        return node

    def start(self, id, name, lane, message=None, **kw):
        body = f'<bpmn:messageEventDefinition id="{id}_Message" messageRef="{message}" />' if message else ""
        return self.add(Node(id, "startEvent", name, lane, body=body, **kw))

    def end(self, id, name, lane, **kw):
        return self.add(Node(id, "endEvent", name, lane, **kw))

    def user(self, id, name, lane, form, doc, **kw):
        return self.add(Node(id, "userTask", name, lane, attrs={"camunda:formKey": f"forms/{form}.schema.json"},
                             documentation=doc, **kw))

    def script(self, id, name, lane, code, **kw):
        body = f"<bpmn:script>{escape(code.strip())}</bpmn:script>"
        return self.add(Node(id, "scriptTask", name, lane, attrs={"scriptFormat": "python"}, body=body, **kw))

    def rule(self, id, name, lane, decision, **kw):
        return self.add(Node(id, "businessRuleTask", name, lane, attrs={"camunda:decisionRef": decision}, **kw))

    def call(self, id, name, lane, called, doc=None, **kw):
        return self.add(Node(id, "callActivity", name, lane, attrs={"calledElement": called}, documentation=doc, **kw))

    def xor(self, id, name, lane, **kw):
        return self.add(Node(id, "exclusiveGateway", name, lane, **kw))

    def inclusive(self, id, name, lane, **kw):
        return self.add(Node(id, "inclusiveGateway", name, lane, **kw))

    def throw(self, id, name, lane, message, expression, **kw):
        body = (f'<bpmn:messageEventDefinition id="{id}_Message" messageRef="{message}" '
                f'camunda:expression={quoteattr(expression)} />')
        return self.add(Node(id, "intermediateThrowEvent", name, lane, body=body, **kw))

    def timer(self, id, name, host, duration_expression, **kw):
        body = (f'<bpmn:timerEventDefinition id="{id}_Timer"><bpmn:timeDuration xsi:type="bpmn:tFormalExpression">'
                f"{escape(duration_expression)}</bpmn:timeDuration></bpmn:timerEventDefinition>")
        lane = self.nodes[host].lane
        return self.add(Node(id, "boundaryEvent", name, lane, attrs={"attachedToRef": host, "cancelActivity": "false"},
                             body=body, attached_to=host, **kw))

    def flow(self, source, target, name=None, condition=None, default=False, flow_id=None):
        flow_id = flow_id or f"Flow_{source.split('_', 1)[1]}_To_{target.split('_', 1)[1]}"
        assert all(f.id != flow_id for f in self.flows), flow_id
        self.flows.append(Flow(flow_id, source, target, name, condition))
        if default:
            self.nodes[source].default = flow_id
        return flow_id

    def chain(self, *ids):
        for source, target in zip(ids, ids[1:]):
            self.flow(source, target)

    # --- layout -------------------------------------------------------------------------------
    def _layout(self):
        outgoing: dict[str, list[Flow]] = {n: [] for n in self.nodes}
        for f in self.flows:
            outgoing[f.source].append(f)
        # back edges: found by a depth-first walk in declaration order
        back, state = set(), {}

        def visit(node_id):
            state[node_id] = "open"
            successors = [f for f in outgoing[node_id]]
            for boundary in [n for n in self.nodes.values() if n.attached_to == node_id]:
                successors.append(Flow("", node_id, boundary.id))
            for f in successors:
                if state.get(f.target) == "open":
                    back.add(f.id)
                elif f.target not in state:
                    visit(f.target)
            state[node_id] = "done"

        for node in self.nodes.values():
            if node.kind == "startEvent" and node.id not in state:
                visit(node.id)
        for node in self.nodes.values():
            if node.id not in state:
                visit(node.id)
        self.back_edges = back
        # columns: longest path over forward edges
        column = {n: 0 for n in self.nodes}
        changed = True
        while changed:
            changed = False
            for f in self.flows:
                if f.id in back:
                    continue
                want = column[f.source] + 1
                if self.nodes[f.target].below:
                    continue
                if self.nodes[f.target].column is None and column[f.target] < want:
                    column[f.target] = want
                    changed = True
            for node in self.nodes.values():
                if node.attached_to and column[node.id] != column[node.attached_to]:
                    column[node.id] = column[node.attached_to]
                    changed = True
                if node.column is not None and column[node.id] != node.column:
                    column[node.id] = node.column
        # tracks: per lane, per column; explicit wishes first, the rest take the first free track
        taken: set[tuple[str, int, int]] = set()
        track: dict[str, int] = {}
        incoming: dict[str, list[Flow]] = {n: [] for n in self.nodes}
        for f in self.flows:
            incoming[f.target].append(f)
        anchored = [n for n in self.nodes.values() if n.below]
        for node in sorted(self.nodes.values(), key=lambda n: (column[n.id], list(self.nodes).index(n.id))):
            if node.attached_to or node.below:
                continue
            for other in anchored:
                host = self.nodes[self.nodes[other.below].attached_to]
                if host.id in track:
                    taken.add((other.lane, column[host.id], track[host.id] + 1))
            wish = node.track
            if wish is None:
                preds = [self.nodes[f.source] for f in incoming[node.id] if f.id not in back]
                same = [track[p.id] for p in preds if p.lane == node.lane and p.id in track]
                wish = min(same) if same else 0
                host_preds = [self.nodes[p.attached_to] for p in preds if p.attached_to]
                if host_preds:
                    wish = track[host_preds[0].id] + 1
            t = wish
            while (node.lane, column[node.id], t) in taken:
                t += 1
            taken.add((node.lane, column[node.id], t))
            track[node.id] = t
        for node in self.nodes.values():
            if node.attached_to:
                track[node.id] = track[node.attached_to]
        for node in self.nodes.values():
            if node.below:
                host = self.nodes[node.below].attached_to
                track[node.id] = track[host] + 1
                column[node.id] = column[host]
        self.column, self.track = column, track
        # geometry
        tracks_per_lane = {lane: 1 for lane in self.lanes}
        for node in self.nodes.values():
            tracks_per_lane[node.lane] = max(tracks_per_lane[node.lane], track[node.id] + 1)
        self.lane_box = {}
        y = 80
        ncols = max(column.values()) + 1
        width = POOL_LABEL + (FIRST_COLUMN_X - POOL_X - POOL_LABEL) + ncols * COLUMN_WIDTH + 40
        for lane in self.lanes:
            height = LANE_TOP_PADDING + tracks_per_lane[lane] * TRACK_HEIGHT + LANE_BOTTOM_PADDING
            self.lane_box[lane] = (POOL_X + POOL_LABEL, y, width - POOL_LABEL, height)
            y += height
        self.pool_box = (POOL_X, 80, width, y - 80)
        self.box = {}
        ordered = ([n for n in self.nodes.values() if not n.attached_to and not n.below]
                   + [n for n in self.nodes.values() if n.attached_to]
                   + [n for n in self.nodes.values() if n.below])
        for node in ordered:
            w, h = SIZES[node.shape]
            if node.attached_to:
                hx, hy, hw, hh = self.box[node.attached_to]
                self.box[node.id] = (hx + hw - 36 - 12, hy + hh - 18, w, h)
                continue
            lx, ly, _, _ = self.lane_box[node.lane]
            if node.below:
                bx, by, bw, bh = self.box[node.below]
                cx = bx + bw / 2 + node.dx
                cy = ly + LANE_TOP_PADDING + track[node.id] * TRACK_HEIGHT + 40
                self.box[node.id] = (cx - w / 2, cy - h / 2, w, h)
                continue
            cx = FIRST_COLUMN_X + column[node.id] * COLUMN_WIDTH + 50
            cy = ly + LANE_TOP_PADDING + track[node.id] * TRACK_HEIGHT + 40
            self.box[node.id] = (cx - w // 2, cy - h // 2, w, h)

    def _ordered_nodes(self):
        hosts_first = [n for n in self.nodes.values() if not n.attached_to]
        return hosts_first + [n for n in self.nodes.values() if n.attached_to]

    def _crosses(self, points, exclude) -> bool:
        for (ax, ay), (bx, by) in zip(points, points[1:]):
            x0, x1, y0, y1 = min(ax, bx), max(ax, bx), min(ay, by), max(ay, by)
            for node_id, (x, y, w, h) in self.box.items():
                if node_id in exclude:
                    continue
                if x0 < x + w - 1 and x + 1 < x1 + 0.001 and y0 < y + h - 1 and y + 1 < y1 + 0.001:
                    return True
                if x0 == x1 and x < x0 < x + w and y0 < y + h and y < y1:
                    return True
                if y0 == y1 and y < y0 < y + h and x0 < x + w and x < x1:
                    return True
        return False

    def _route(self, f: Flow, back_index: dict):
        """The default path; when it would cross a shape, a detour over the top of the upper lane (loops
        first) or along the bottom of the lower lane (forward flows first), whichever crosses nothing."""
        exclude = {f.source, f.target}
        exclude |= {n.id for n in self.nodes.values() if n.attached_to in exclude}
        if f.id not in self.back_edges:
            points = self._waypoints(f, back_index)
            if not self._crosses(points, exclude):
                return points
        sx, sy, sw, sh = self.box[f.source]
        tx, ty, tw, th = self.box[f.target]
        lanes = sorted({self.nodes[f.source].lane, self.nodes[f.target].lane}, key=lambda l: self.lane_box[l][1])
        upper, lower = lanes[0], lanes[-1]

        def over():
            route_y = self.lane_box[upper][1] + 8 + 8 * self._next_detour(("top", upper))
            return [(sx + sw / 2, sy), (sx + sw / 2, route_y), (tx + tw / 2, route_y), (tx + tw / 2, ty)]

        def under():
            lx, ly, lw, lh = self.lane_box[lower]
            route_y = ly + lh - 8 - 8 * self._next_detour(("bottom", lower))
            return [(sx + sw / 2, sy + sh), (sx + sw / 2, route_y), (tx + tw / 2, route_y), (tx + tw / 2, ty + th)]

        candidates = [over, under] if f.id in self.back_edges else [under, over]
        first = None
        for candidate in candidates:
            points = candidate()
            first = first or points
            if not self._crosses(points, exclude):
                return points
            self._undo_detour(candidate is over and ("top", upper) or ("bottom", lower))
        return first

    def _undo_detour(self, key) -> None:
        self._detours[key] -= 1

    def _next_detour(self, lane: str) -> int:
        index = self._detours.get(lane, 0)
        self._detours[lane] = index + 1
        return index

    def _waypoints(self, f: Flow, back_index: dict):
        sx, sy, sw, sh = self.box[f.source]
        tx, ty, tw, th = self.box[f.target]
        scx, scy, tcx, tcy = sx + sw / 2, sy + sh / 2, tx + tw / 2, ty + th / 2
        source, target = self.nodes[f.source], self.nodes[f.target]
        if f.id in self.back_edges:
            lane_y = min(self.lane_box[source.lane][1], self.lane_box[target.lane][1])
            route_y = lane_y + 8
            return [(scx, sy), (scx, route_y), (tcx, route_y), (tcx, ty)]
        if source.attached_to and abs(scx - tcx) < 1:
            return [(scx, sy + sh), (tcx, ty)]
        if source.attached_to:
            return [(scx, sy + sh), (scx, tcy), (tx, tcy)]
        if abs(scy - tcy) < 1:
            return [(sx + sw, scy), (tx, tcy)]
        if source.shape == "gateway":
            return [(scx, sy + sh if tcy > scy else sy), (scx, tcy), (tx, tcy)]
        if target.shape == "gateway":
            return [(sx + sw, scy), (tcx, scy), (tcx, ty if tcy > scy else ty + th)]
        mid = (sx + sw + tx) / 2
        return [(sx + sw, scy), (mid, scy), (mid, tcy), (tx, tcy)]

    # --- writing ------------------------------------------------------------------------------
    def xml(self) -> str:
        self._layout()
        short = self.short
        out = ['<?xml version="1.0" encoding="UTF-8"?>',
               f'<bpmn:definitions xmlns:bpmn="{BPMN_NS}" xmlns:bpmndi="http://www.omg.org/spec/BPMN/20100524/DI" '
               'xmlns:dc="http://www.omg.org/spec/DD/20100524/DC" xmlns:di="http://www.omg.org/spec/DD/20100524/DI" '
               'xmlns:camunda="http://camunda.org/schema/1.0/bpmn" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
               f'id="Definitions_{short}" targetNamespace="http://usm-engine.org/definitions" '
               'exporter="usm-engine tools/generate_definitions.py" exporterVersion="1.0">']
        out.append(f'  <bpmn:collaboration id="Collaboration_{short}">')
        out.append(f'    <bpmn:participant id="Participant_{short}" name={quoteattr(self.name)} processRef="{self.key}" />')
        out.append("  </bpmn:collaboration>")
        for message_id, message_name in self.messages.items():
            out.append(f'  <bpmn:message id="{message_id}" name="{message_name}" />')
        out.append(f'  <bpmn:process id="{self.key}" name={quoteattr(self.name)} isExecutable="true">')
        out.append(f"    <bpmn:documentation>{escape(self.documentation)}</bpmn:documentation>")
        if self.io:
            out.append(self.io)
        out.append(f'    <bpmn:laneSet id="LaneSet_{short}">')
        for lane in self.lanes:
            members = [n.id for n in self.nodes.values() if n.lane == lane]
            out.append(f'      <bpmn:lane id="Lane_{short}_{_ident(lane)}" name={quoteattr(lane)}>')
            out.extend(f"        <bpmn:flowNodeRef>{m}</bpmn:flowNodeRef>" for m in members)
            out.append("      </bpmn:lane>")
        out.append("    </bpmn:laneSet>")
        for node in self.nodes.values():
            attrs = {"id": node.id, "name": node.name, **node.attrs}
            if node.default:
                attrs["default"] = node.default
            attr_text = " ".join(f"{k}={quoteattr(v)}" for k, v in attrs.items())
            out.append(f"    <bpmn:{node.kind} {attr_text}>")
            if node.documentation:
                out.append(f"      <bpmn:documentation>{escape(node.documentation)}</bpmn:documentation>")
            for f in self.flows:
                if f.target == node.id:
                    out.append(f"      <bpmn:incoming>{f.id}</bpmn:incoming>")
            for f in self.flows:
                if f.source == node.id:
                    out.append(f"      <bpmn:outgoing>{f.id}</bpmn:outgoing>")
            if node.body:
                out.append(f"      {node.body}")
            out.append(f"    </bpmn:{node.kind}>")
        for f in self.flows:
            name = f" name={quoteattr(f.name)}" if f.name else ""
            if f.condition:
                out.append(f'    <bpmn:sequenceFlow id="{f.id}"{name} sourceRef="{f.source}" targetRef="{f.target}">')
                out.append(f'      <bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">{escape(f.condition)}'
                           "</bpmn:conditionExpression>")
                out.append("    </bpmn:sequenceFlow>")
            else:
                out.append(f'    <bpmn:sequenceFlow id="{f.id}"{name} sourceRef="{f.source}" targetRef="{f.target}" />')
        out.append("  </bpmn:process>")
        # diagram interchange
        out.append(f'  <bpmndi:BPMNDiagram id="BPMNDiagram_{short}">')
        out.append(f'    <bpmndi:BPMNPlane id="BPMNPlane_{short}" bpmnElement="Collaboration_{short}">')
        x, y, w, h = self.pool_box
        out.append(f'      <bpmndi:BPMNShape id="Participant_{short}_di" bpmnElement="Participant_{short}" isHorizontal="true">')
        out.append(f'        <dc:Bounds x="{x}" y="{y}" width="{w}" height="{h}" />')
        out.append("      </bpmndi:BPMNShape>")
        for lane in self.lanes:
            x, y, w, h = self.lane_box[lane]
            lane_id = f"Lane_{short}_{_ident(lane)}"
            out.append(f'      <bpmndi:BPMNShape id="{lane_id}_di" bpmnElement="{lane_id}" isHorizontal="true">')
            out.append(f'        <dc:Bounds x="{x}" y="{y}" width="{w}" height="{h}" />')
            out.append("      </bpmndi:BPMNShape>")
        for node in self._ordered_nodes():
            x, y, w, h = self.box[node.id]
            marker = ' isMarkerVisible="true"' if node.kind == "exclusiveGateway" else ""
            out.append(f'      <bpmndi:BPMNShape id="{node.id}_di" bpmnElement="{node.id}"{marker}>')
            out.append(f'        <dc:Bounds x="{x}" y="{y}" width="{w}" height="{h}" />')
            if node.shape != "task" and node.name:
                label_w = 90
                out.append("        <bpmndi:BPMNLabel>")
                if node.attached_to:  # below-left of the boundary event, clear of the host
                    out.append(f'          <dc:Bounds x="{x - label_w - 4}" y="{y + h - 4}" width="{label_w}" height="27" />')
                else:
                    out.append(f'          <dc:Bounds x="{x + w / 2 - label_w / 2}" y="{y + h + 4}" width="{label_w}" height="27" />')
                out.append("        </bpmndi:BPMNLabel>")
            out.append("      </bpmndi:BPMNShape>")
        back_index, self._detours = {}, {}
        for f in self.flows:
            out.append(f'      <bpmndi:BPMNEdge id="{f.id}_di" bpmnElement="{f.id}">')
            points = self._route(f, back_index)
            for px, py in points:
                out.append(f'        <di:waypoint x="{_num(px)}" y="{_num(py)}" />')
            if f.name:
                # on the first horizontal stretch, just after its start (beside a vertical-only line otherwise)
                segments = list(zip(points, points[1:]))
                horizontal = [(a, b) for a, b in segments if abs(a[1] - b[1]) < 1]
                (ax, ay), (bx, by) = horizontal[0] if horizontal else segments[0]
                if abs(ay - by) < 1:
                    lx, ly = min(ax, bx) + 6 if bx > ax else max(ax, bx) - 76, ay - 18
                else:
                    lx, ly = ax + 6, (ay + 34 if by > ay else ay - 18)
                out.append("        <bpmndi:BPMNLabel>")
                out.append(f'          <dc:Bounds x="{_num(lx)}" y="{_num(ly)}" width="70" height="14" />')
                out.append("        </bpmndi:BPMNLabel>")
            out.append("      </bpmndi:BPMNEdge>")
        out.append("    </bpmndi:BPMNPlane>")
        out.append("  </bpmndi:BPMNDiagram>")
        out.append("</bpmn:definitions>")
        return "\n".join(out) + "\n"


def _ident(text: str) -> str:
    return "".join(part.capitalize() if part.islower() else part for part in
                   "".join(c if c.isalnum() else " " for c in text).split())


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"
