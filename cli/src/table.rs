//! Aligned columns for the terminal (comfy-table, no borders): each column as wide as its
//! widest cell, two spaces between columns, numbers right-aligned.

use comfy_table::{CellAlignment, Table};

pub struct Columns {
    table: Table,
    right: Vec<usize>,
}

impl Columns {
    pub fn new(header: &[&str]) -> Columns {
        let mut table = Table::new();
        table.load_style(comfy_table::presets::NOTHING).set_header(header.to_vec());
        Columns { table, right: Vec::new() }
    }

    /// These columns (counted from 0) are right-aligned.
    pub fn right(mut self, columns: &[usize]) -> Columns {
        self.right = columns.to_vec();
        self
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.table.add_row(cells);
    }

    /// The table as lines, without trailing spaces.
    pub fn render(mut self) -> String {
        let last = self.table.column_count().saturating_sub(1);
        for column in self.table.column_iter_mut() {
            let i = column.index;
            column.set_padding((0, if i == last { 0 } else { 2 }));
            if self.right.contains(&i) {
                column.set_cell_alignment(CellAlignment::Right);
            }
        }
        let text = self.table.to_string();
        let lines: Vec<&str> = text.lines().map(str::trim_end).filter(|l| !l.is_empty()).collect();
        lines.join("\n")
    }

    pub fn print(self) {
        println!("{}", self.render());
    }
}

#[cfg(test)]
mod tests {
    use super::Columns;

    #[test]
    fn columns_line_up_whatever_their_contents() {
        let mut t = Columns::new(&["ID", "STATE", "OBJECTS"]).right(&[2]);
        t.row(vec!["node-1".into(), "alive".into(), "7".into()]);
        t.row(vec!["node-12".into(), "suspect".into(), "1024".into()]);
        assert_eq!(t.render(), "ID       STATE    OBJECTS\nnode-1   alive          7\nnode-12  suspect     1024");
    }
}
