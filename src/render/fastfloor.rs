//! `floor` without libm: baseline x86-64 has no rounding instruction, so `f64::floor` is a
//! function call, and the renderers take several floors per point.

/// floor(v) for |v| < 2^63 (saturating beyond, as `as` casts do).
#[inline(always)]
pub fn floor_i64(v: f64) -> i64 {
    let t = v as i64;
    t - i64::from((t as f64) > v)
}

/// floor(v), exact for every f64: from 2^52 up every f64 is an integer, and infinities and
/// NaN pass through.
#[inline(always)]
pub fn floor_f64(v: f64) -> f64 {
    if v.abs() < 4_503_599_627_370_496.0 {
        // Truncation toward zero is exact in this range.
        let t = v as i64 as f64;
        if t > v {
            t - 1.0
        } else {
            t
        }
    } else {
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_standard_floor() {
        let values = [
            0.0,
            -0.0,
            0.5,
            -0.5,
            1.0,
            -1.0,
            2.999_999,
            -2.000_001,
            1e15 + 0.5,
            -1e15 - 0.5,
            4.5e15,
            -4.6e15,
            1e300,
            -1e300,
        ];
        for v in values {
            assert_eq!(floor_f64(v), v.floor(), "{v:e}");
            if v.abs() < 9e18 {
                assert_eq!(floor_i64(v), v.floor() as i64, "{v:e}");
            }
        }
        assert!(floor_f64(f64::NAN).is_nan());
        assert_eq!(floor_f64(f64::NEG_INFINITY), f64::NEG_INFINITY);
    }

    #[test]
    fn matches_the_standard_floor_next_to_integers() {
        let mut values = vec![
            0.0, -0.0, 0.5, -0.5, 1.0, -1.0, 2.5, -2.5, 3.5, 1e-300, -1e-300,
        ];
        for k in [0.0, 1.0, 255.0, 256.0, 65535.0, 1e9, 3.0e15, -7.0, -1e12] {
            for d in [
                -1e-9,
                -f64::EPSILON,
                0.0,
                f64::EPSILON,
                0.49999999999999994,
                0.5,
                0.99,
            ] {
                values.push(k + d);
                values.push(f64::from_bits((k + d).to_bits() + 1));
                values.push(f64::from_bits((k + d).to_bits().saturating_sub(1)));
            }
        }
        for v in values {
            assert_eq!(floor_f64(v), v.floor(), "{v:e}");
            assert_eq!(floor_i64(v), v.floor() as i64, "{v:e}");
        }
        assert!(floor_f64(f64::NAN).is_nan());
    }
}
