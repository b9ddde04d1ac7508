//! Aligned text tables for people (scripts use `--json`).

/// Columns padded to their widest cell (counted in characters), two spaces apart; the last
/// column is not padded, so lines carry no trailing blanks.
pub fn render(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let header: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let last = row.len().min(widths.len()).saturating_sub(1);
        for (i, cell) in row.iter().enumerate().take(widths.len()) {
            out.push_str(cell);
            if i < last {
                let pad = widths[i] - cell.chars().count() + 2;
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push('\n');
    }
    out
}

/// `label: value` lines, labels aligned.
pub fn fields(pairs: &[(&str, String)]) -> String {
    let width = pairs.iter().map(|(l, _)| l.chars().count()).max().unwrap_or(0);
    let mut out = String::new();
    for (label, value) in pairs {
        let pad = width - label.chars().count();
        out.push_str(&format!("{label}:{} {value}\n", " ".repeat(pad)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_on_the_widest_cell_without_trailing_blanks() {
        let rows = vec![
            vec!["GKabc".to_string(), "ci".into(), "yes".into()],
            vec!["GK1".to_string(), "backups-é".into(), "no".into()],
        ];
        let text = render(&["ID", "NAME", "CREATE"], &rows);
        assert_eq!(
            text,
            "ID     NAME       CREATE\n\
             GKabc  ci         yes\n\
             GK1    backups-é  no\n"
        );
        assert!(text.lines().all(|l| !l.ends_with(' ')));
        assert_eq!(render(&["A"], &[]), "A\n");
    }

    #[test]
    fn fields_align_their_labels() {
        let text = fields(&[("id", "GK1".into()), ("secret", "s".into())]);
        assert_eq!(text, "id:     GK1\nsecret: s\n");
    }
}
