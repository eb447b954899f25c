// Sorting a table by a column: click a header (again to reverse). Cells sort by their data-sort value when they
// have one (numbers), else by their text. No dependencies; works from file://.
"use strict";
document.querySelectorAll("table.sortable").forEach(function (table) {
  var heads = table.tHead ? table.tHead.rows[0].cells : [];
  Array.prototype.forEach.call(heads, function (head, column) {
    var button = document.createElement("button");
    button.type = "button";
    button.textContent = head.textContent;
    head.textContent = "";
    head.appendChild(button);
    button.addEventListener("click", function () {
      var body = table.tBodies[0];
      var ascending = head.getAttribute("aria-sort") !== "ascending";
      Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("aria-sort"); });
      head.setAttribute("aria-sort", ascending ? "ascending" : "descending");
      var key = function (row) {
        var cell = row.cells[column];
        var value = cell ? (cell.getAttribute("data-sort") || cell.textContent.trim()) : "";
        var number = value === "" ? NaN : Number(value);
        return isNaN(number) ? { text: value } : { number: number };
      };
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        var order = x.number !== undefined && y.number !== undefined ? x.number - y.number
          : String(x.text !== undefined ? x.text : x.number).localeCompare(String(y.text !== undefined ? y.text : y.number));
        return ascending ? order : -order;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
