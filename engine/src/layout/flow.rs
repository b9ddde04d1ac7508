//! Minimum-cost maximum flow, the solver behind the partition planner.
//!
//! Why a flow: "give every partition RF nodes, respect zone limits, hit each node's target
//! count, move as little as possible" is exactly a min-cost flow (see `plan.rs`), and flow
//! polytopes have integral optima, so the solver finds a best integral assignment instead
//! of a heuristic's local optimum.
//!
//! Method: successive shortest paths with Johnson potentials. Each phase runs Dijkstra on
//! reduced costs, then pushes a blocking flow (Dinic) through the edges of reduced cost
//! zero, which are exactly the edges on some shortest path. Costs in the planner take few
//! distinct values, so there are few phases. Everything is index-ordered: equal inputs give
//! equal flows.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

/// Handle to an edge added with [`FlowGraph::add_edge`], to read its flow afterwards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct EdgeRef {
    from: usize,
    index: usize,
}

#[derive(Clone, Debug)]
struct Edge {
    to: usize,
    /// Index of the paired residual edge in `adjacency[to]`.
    rev: usize,
    /// Remaining capacity.
    cap: i64,
    cost: i64,
}

/// Directed graph with integer capacities and costs.
///
/// Every edge must go from a lower to a higher vertex index (the graph is a DAG in index
/// order); that lets one pass in index order compute the initial potentials even though
/// costs may be negative.
#[derive(Clone, Debug)]
pub(crate) struct FlowGraph {
    adjacency: Vec<Vec<Edge>>,
    potential: Vec<i64>,
}

const UNREACHED: i64 = i64::MAX;

impl FlowGraph {
    /// A graph with `vertices` vertices and no edges.
    pub fn new(vertices: usize) -> Self {
        FlowGraph { adjacency: vec![Vec::new(); vertices], potential: vec![0; vertices] }
    }

    /// Adds an edge `from → to` with capacity `cap` and per-unit `cost`.
    pub fn add_edge(&mut self, from: usize, to: usize, cap: i64, cost: i64) -> EdgeRef {
        assert!(from < to, "flow graph edges must follow index order ({from} → {to})");
        assert!(cap >= 0, "negative capacity");
        let index = self.adjacency[from].len();
        let rev = self.adjacency[to].len();
        self.adjacency[from].push(Edge { to, rev, cap, cost });
        self.adjacency[to].push(Edge { to: from, rev: index, cap: 0, cost: -cost });
        EdgeRef { from, index }
    }

    /// Flow currently carried by `edge`: what its residual twin has received.
    pub fn flow(&self, edge: EdgeRef) -> i64 {
        let e = &self.adjacency[edge.from][edge.index];
        self.adjacency[e.to][e.rev].cap
    }

    /// Pushes a maximum flow from `source` to `sink` of minimum total cost; returns its value.
    pub fn min_cost_max_flow(&mut self, source: usize, sink: usize) -> i64 {
        self.initial_potentials(source);
        let mut total = 0;
        while self.dijkstra(source, sink) {
            loop {
                let level = self.admissible_levels(source);
                if level[sink] == usize::MAX {
                    break;
                }
                let mut next_edge = vec![0; self.adjacency.len()];
                loop {
                    let pushed = self.push(source, sink, i64::MAX, &level, &mut next_edge);
                    if pushed == 0 {
                        break;
                    }
                    total += pushed;
                }
            }
        }
        total
    }

    /// Shortest distances from `source` over the original edges, which form a DAG in index
    /// order; unreachable vertices keep potential 0 and stay unreachable forever.
    fn initial_potentials(&mut self, source: usize) {
        let mut dist = vec![UNREACHED; self.adjacency.len()];
        dist[source] = 0;
        for u in 0..self.adjacency.len() {
            if dist[u] == UNREACHED {
                continue;
            }
            for e in self.adjacency[u].iter().filter(|e| e.cap > 0) {
                dist[e.to] = dist[e.to].min(dist[u] + e.cost);
            }
        }
        for (p, d) in self.potential.iter_mut().zip(dist) {
            *p = if d == UNREACHED { 0 } else { d };
        }
    }

    fn reduced_cost(&self, from: usize, e: &Edge) -> i64 {
        e.cost + self.potential[from] - self.potential[e.to]
    }

    /// Dijkstra on reduced costs, then folds distances into the potentials so that every
    /// shortest-path edge gets reduced cost zero. Returns whether `sink` is reachable.
    ///
    /// Vertices unreachable now stay unreachable: augmenting only adds residual edges
    /// between reachable vertices. Their potentials no longer matter.
    fn dijkstra(&mut self, source: usize, sink: usize) -> bool {
        let mut dist = vec![UNREACHED; self.adjacency.len()];
        let mut heap = BinaryHeap::new();
        dist[source] = 0;
        heap.push(Reverse((0_i64, source)));
        while let Some(Reverse((d, u))) = heap.pop() {
            if d > dist[u] {
                continue;
            }
            for e in self.adjacency[u].iter().filter(|e| e.cap > 0) {
                let reduced = self.reduced_cost(u, e);
                debug_assert!(reduced >= 0, "negative reduced cost: potentials broken");
                if d + reduced < dist[e.to] {
                    dist[e.to] = d + reduced;
                    heap.push(Reverse((d + reduced, e.to)));
                }
            }
        }
        for (p, d) in self.potential.iter_mut().zip(&dist) {
            if *d != UNREACHED {
                *p += d;
            }
        }
        dist[sink] != UNREACHED
    }

    /// BFS levels over residual edges of reduced cost zero (`usize::MAX` = not reached).
    fn admissible_levels(&self, source: usize) -> Vec<usize> {
        let mut level = vec![usize::MAX; self.adjacency.len()];
        let mut queue = VecDeque::from([source]);
        level[source] = 0;
        while let Some(u) = queue.pop_front() {
            for e in &self.adjacency[u] {
                if e.cap > 0 && level[e.to] == usize::MAX && self.reduced_cost(u, e) == 0 {
                    level[e.to] = level[u] + 1;
                    queue.push_back(e.to);
                }
            }
        }
        level
    }

    /// Finds one augmenting path in the level graph and pushes up to `limit` along it.
    ///
    /// Recursion depth is bounded by the level of the sink, i.e. a shortest path length.
    fn push(
        &mut self,
        u: usize,
        sink: usize,
        limit: i64,
        level: &[usize],
        next_edge: &mut [usize],
    ) -> i64 {
        if u == sink {
            return limit;
        }
        while next_edge[u] < self.adjacency[u].len() {
            let i = next_edge[u];
            let e = self.adjacency[u][i].clone();
            if e.cap > 0 && level[e.to] == level[u] + 1 && self.reduced_cost(u, &e) == 0 {
                let pushed = self.push(e.to, sink, limit.min(e.cap), level, next_edge);
                if pushed > 0 {
                    self.adjacency[u][i].cap -= pushed;
                    self.adjacency[e.to][e.rev].cap += pushed;
                    return pushed;
                }
            }
            next_edge[u] += 1;
        }
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefers_cheap_paths_and_saturates() {
        // 0 → {1, 2} → 3; the path through 2 is cheaper but carries only 1 unit.
        let mut g = FlowGraph::new(4);
        let a = g.add_edge(0, 1, 2, 0);
        let b = g.add_edge(0, 2, 2, 0);
        g.add_edge(1, 3, 2, 5);
        g.add_edge(2, 3, 1, -3);
        assert_eq!(g.min_cost_max_flow(0, 3), 3);
        assert_eq!((g.flow(a), g.flow(b)), (2, 1));
    }

    #[test]
    fn reroutes_through_residual_edges() {
        // Greedy takes 0→1→2→3 (cost 0); the optimum for 2 units needs undoing 1→2.
        let mut g = FlowGraph::new(4);
        g.add_edge(0, 1, 1, 0);
        g.add_edge(0, 2, 1, 2);
        let middle = g.add_edge(1, 2, 1, 0);
        g.add_edge(1, 3, 1, 3);
        g.add_edge(2, 3, 1, 0);
        assert_eq!(g.min_cost_max_flow(0, 3), 2);
        assert_eq!(g.flow(middle), 0);
    }
}
