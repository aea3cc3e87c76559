//! LIKE patterns (cesql spec, "LIKE operator"): `%` matches any run of characters, `_` exactly
//! one, `\%` and `\_` the characters themselves; any other backslash is literal.

/// One element of a compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Char(char),
    AnyOne,
    AnyRun,
}

/// A LIKE pattern compiled once at trigger creation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LikePattern {
    parts: Vec<Part>,
}

impl LikePattern {
    /// Compiles a pattern.
    pub fn compile(pattern: &str) -> Self {
        let mut parts = Vec::new();
        let mut chars = pattern.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.peek() {
                    Some(&n @ ('%' | '_')) => {
                        chars.next();
                        parts.push(Part::Char(n));
                    }
                    _ => parts.push(Part::Char('\\')),
                },
                '%' => {
                    // Consecutive runs are one run; keeping one keeps matching linear-ish.
                    if parts.last() != Some(&Part::AnyRun) {
                        parts.push(Part::AnyRun);
                    }
                }
                '_' => parts.push(Part::AnyOne),
                c => parts.push(Part::Char(c)),
            }
        }
        LikePattern { parts }
    }

    /// Whether `value` matches the whole pattern. Greedy with one backtrack point per `%`, so
    /// the cost is O(len(value) x len(pattern)) at worst, never exponential.
    pub fn matches(&self, value: &str) -> bool {
        let v: Vec<char> = value.chars().collect();
        let p = &self.parts;
        let (mut vi, mut pi) = (0usize, 0usize);
        let mut star: Option<(usize, usize)> = None;
        while vi < v.len() {
            match p.get(pi) {
                Some(Part::AnyRun) => {
                    star = Some((pi, vi));
                    pi += 1;
                }
                Some(Part::AnyOne) => {
                    pi += 1;
                    vi += 1;
                }
                Some(Part::Char(c)) if *c == v[vi] => {
                    pi += 1;
                    vi += 1;
                }
                _ => match star {
                    Some((sp, sv)) => {
                        pi = sp + 1;
                        vi = sv + 1;
                        star = Some((sp, sv + 1));
                    }
                    None => return false,
                },
            }
        }
        p[pi..].iter().all(|part| *part == Part::AnyRun)
    }
}

#[cfg(test)]
mod tests {
    use super::LikePattern;

    #[test]
    fn wildcards_and_escapes() {
        let m = |v: &str, p: &str| LikePattern::compile(p).matches(v);
        assert!(m("abc", "a%c"));
        assert!(m("ac", "a%c"));
        assert!(!m("ab", "a%c"));
        assert!(m("abc", "a_c"));
        assert!(!m("ac", "a_c"));
        assert!(m("a%c", "a\\%c"));
        assert!(!m("abc", "a\\%c"));
        assert!(m("ab\\c", "ab\\c"));
        assert!(m("", "%"));
        assert!(!m("", "_"));
        assert!(m("aaaaaaaaaaaaaaaaaaaaaaaaaaaaab", "%a%a%a%a%a%b"));
        assert!(!m("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "%a%a%a%a%a%b"));
    }
}
