// Recharts colours its legend text like the series; keep the text dark
// for contrast and let the swatch carry the colour.
export const legendText = (value: unknown) => <span style={{ color: '#14181f' }}>{String(value)}</span>;
